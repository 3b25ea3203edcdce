"""Feature stages (src/fma_genre/features/): log-mel frames per track (one job per FMA folder), then the manifest."""


rule log_mel_shard:
    """Centred Kaldi log-mel frames (float16, frames x 80) for every track of one FMA folder;
    the status table holds each track's status, file SHA1 and per-bin mean levels."""
    input:
        table=f"data/processed/{SUBSET}_subset.csv",
        audio=f"data/raw/fma_{SUBSET}",
        code=script_code("log_mel_shard"),
    output:
        features=directory(f"{FEATURES_DIR}/{{shard}}"),
        status=f"{FEATURES_DIR}/{{shard}}.status.csv",
    log:
        f"logs/log_mel_shard/{SUBSET}/{{shard}}.log",
    benchmark:
        f"benchmarks/log_mel_shard/{SUBSET}/{{shard}}.tsv"
    conda:
        PIPELINE_ENV
    threads: config["feature_threads"]
    resources:
        mem_mb=2000,
    params:
        min_clip_seconds=config["min_clip_seconds"],
    script:
        "../../scripts/log_mel_shard.py"


rule feature_manifest:
    """Every track with its labels, feature file and status (`ok` or why it has none)."""
    input:
        multihot=f"data/processed/{SUBSET}_subset_multihot.csv",
        status=feature_status_tables,
        code=script_code("feature_manifest"),
    output:
        manifest="data/processed/final_feature_manifest.csv",
    log:
        "logs/feature_manifest.log",
    benchmark:
        "benchmarks/feature_manifest.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    script:
        "../../scripts/feature_manifest.py"
