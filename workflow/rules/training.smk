"""Training stage (src/fma_genre/training/): one job per experiment and seed, on a GPU; the
probe experiments' backbone outputs once per crop length."""


rule probe_cache:
    """The frozen backbone's pooled outputs of every training and validation window (float16
    shards): what the probe experiments of this crop length train on, whatever their seed.
    """
    input:
        manifest="data/processed/final_feature_manifest.csv",
        weights=model_weights_dir(),
        code=script_code("probe_cache"),
    output:
        cache=directory("results/probe_cache/crop{crop}s"),
    log:
        "logs/probe_cache/crop{crop}s.log",
    benchmark:
        "benchmarks/probe_cache/crop{crop}s.tsv"
    wildcard_constraints:
        crop=r"[0-9.]+",
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        batch_size=lambda wildcards: max(
            s["eval_batch_size"] for s in EXPERIMENTS.values()
        ),
    script:
        "../../scripts/probe_cache.py"


rule train:
    """Train one experiment with one seed on random log-mel crops (probe: cached backbone
    outputs); keep the epoch with the best validation score."""
    input:
        unpack(probe_cache_input),
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        weights=model_weights_dir(),
        code=script_code("train"),
    output:
        model=directory(run_file("model")),
        training_log=run_file("training_log.csv"),
    log:
        "logs/train/{experiment}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{experiment}/seed{seed}.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=24 * 60,
    params:
        training=run_training_settings,
        # Resumable state and TensorBoard events live outside the outputs, which Snakemake
        # deletes before a rerun.
        state_dir=lambda wildcards: run_file("train_state").format(**wildcards),
        tensorboard_dir=lambda wildcards: run_file("tensorboard").format(**wildcards),
    script:
        "../../scripts/train.py"
