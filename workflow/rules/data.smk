"""Data stages (src/fma_genre/data/): download + verify, unzip + verify, subset table, multi-hot
labels."""


localrules:
    download,


rule download:
    """Fetch one official archive (resumable, retried) and verify its SHA1."""
    input:
        unpack(download_source_inputs),
        code=script_code("download"),
    output:
        archive="data/raw/{archive}.zip",
    log:
        "logs/download/{archive}.log",
    benchmark:
        "benchmarks/download/{archive}.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        source=config["source"],
        retries=config["download_retries"],
    script:
        "../../scripts/download.py"


rule unzip:
    """Extract a BZIP2 archive atomically and verify every member against its `checksums`."""
    input:
        archive="data/raw/{archive}.zip",
        code=script_code("unzip"),
    output:
        folder=directory("data/raw/{archive}"),
    log:
        "logs/unzip/{archive}.log",
    benchmark:
        "benchmarks/unzip/{archive}.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    script:
        "../../scripts/unzip.py"


checkpoint subset_table:
    """One row per track of the subset: split, genres, audio path, duration."""
    input:
        metadata="data/raw/fma_metadata",
        code=script_code("subset_table"),
    output:
        table="data/processed/{subset}_subset.csv",
    log:
        "logs/subset_table/{subset}.log",
    benchmark:
        "benchmarks/subset_table/{subset}.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        audio_dir="data/raw/fma_{subset}",
    script:
        "../../scripts/subset_table.py"


rule multihot_labels:
    """Multi-hot labels over the unified genre vocabulary, from genre ids."""
    input:
        table=f"data/processed/{SUBSET}_subset.csv",
        metadata="data/raw/fma_metadata",
        code=script_code("multihot_labels"),
    output:
        multihot=f"data/processed/{SUBSET}_subset_multihot.csv",
        vocabulary="data/processed/unified_genres.txt",
    log:
        "logs/multihot_labels.log",
    benchmark:
        "benchmarks/multihot_labels.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        min_genre_tracks=config["min_genre_tracks"],
    script:
        "../../scripts/multihot_labels.py"
