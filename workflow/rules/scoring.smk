"""Scoring stage (src/fma_genre/scoring/): a trained model's probabilities for a split, on a GPU."""


rule score:
    """The model's probabilities for every track of a split, in windows like training's."""
    input:
        model=run_file("model"),
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=script_code("score"),
    output:
        scores=run_file("{split}_scores.csv"),
    log:
        "logs/score/{experiment}/seed{seed}/{split}.log",
    benchmark:
        "benchmarks/score/{experiment}/seed{seed}/{split}.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        batch_size=lambda wildcards: EXPERIMENTS[wildcards.experiment][
            "eval_batch_size"
        ],
    script:
        "../../scripts/score.py"
