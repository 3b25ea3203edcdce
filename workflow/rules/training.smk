"""Training stage (src/fma_genre/training/): one job per experiment and seed, on a GPU."""


rule train:
    """Train one experiment with one seed on random log-mel crops (probe: cached backbone
    outputs); keep the epoch with the best validation score."""
    input:
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
