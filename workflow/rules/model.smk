"""Model stages: pretrained weights, fine-tuning (GPU), the scikit-learn baseline, evaluation."""


localrules:
    model_weights,


rule model_weights:
    """Pretrained Wav2Vec2-BERT from the Hugging Face hub (or the demo's tiny random one)."""
    input:
        code=package_module("model"),
    output:
        weights=directory(model_weights_dir()),
    log:
        "logs/model_weights.log",
    benchmark:
        "benchmarks/model_weights.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        model=config["model"],
        tiny=config["tiny_model"],
        seed=config["training"]["seed"],
    script:
        "../../scripts/model_weights.py"


rule train:
    """Fine-tune on random log-mel crops; keep the epoch with the best validation score."""
    input:
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        weights=model_weights_dir(),
        code=[
            package_module("train"),
            package_module("model"),
            package_module("logmel"),
        ],
    output:
        model=directory("results/model"),
        training_log="results/training_log.csv",
    log:
        "logs/train.log",
    benchmark:
        "benchmarks/train.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=24 * 60,
    params:
        training=config["training"],
        # Resumable state lives outside the outputs, which Snakemake deletes before a rerun.
        state_dir="results/train_state",
    script:
        "../../scripts/train.py"


rule baseline:
    """Logistic regression on per-track log-mel statistics: the classical point of comparison."""
    input:
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=package_module("baseline"),
    output:
        scores="results/baseline_scores.csv",
    log:
        "logs/baseline.log",
    benchmark:
        "benchmarks/baseline.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    script:
        "../../scripts/baseline.py"


rule evaluate:
    """Test-split metrics of the model and the baseline (scikit-learn), predictions and plots."""
    input:
        model="results/model",
        training_log="results/training_log.csv",
        baseline_scores="results/baseline_scores.csv",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=[
            package_module("evaluate"),
            package_module("metrics"),
            package_module("plots"),
        ],
    output:
        metrics=report(
            "results/metrics.json",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
        predictions="results/predictions.csv",
        confusion_matrix=report(
            "results/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Evaluation",
        ),
        training_curves=report(
            "results/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/evaluate.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    params:
        subset=config["subset"],
        model_name=model_display_name(),
        batch_size=config["training"]["eval_batch_size"],
    script:
        "../../scripts/evaluate.py"
