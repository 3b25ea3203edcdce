"""The built-in demo dataset (src/fma_genre/demo/): synthetic archives packed like FMA's."""


localrules:
    demo_archives,


rule demo_archives:
    """Synthetic archives packed like FMA's, for the offline demo (`source` is `demo.source_dir`)."""
    input:
        code=script_code("demo_archives"),
    output:
        metadata=f"{config['demo']['source_dir']}/fma_metadata.zip",
        audio=f"{config['demo']['source_dir']}/fma_small.zip",
        sha1sums=f"{config['demo']['source_dir']}/SHA1SUMS",
    log:
        "logs/demo_archives.log",
    benchmark:
        "benchmarks/demo_archives.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    params:
        tracks_per_genre=config["demo"]["tracks_per_genre"],
        seed=config["demo"]["seed"],
    script:
        "../../scripts/demo_archives.py"
