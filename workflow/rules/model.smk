"""Model stages: pretrained weights, fine-tuning (GPU), scoring (GPU), the scikit-learn
baseline, the figures and the evaluation."""


localrules:
    model_weights,


rule model_weights:
    """Pretrained Wav2Vec2-BERT of one hub commit (config `model_revision`), or the demo's tiny one."""
    input:
        code=script_code("model_weights"),
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
        revision=config["model_revision"],
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
        code=script_code("train"),
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


rule score:
    """The model's probabilities for every track of a split, in windows like training's."""
    input:
        model="results/model",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=script_code("score"),
    output:
        scores="results/{split}_scores.csv",
    log:
        "logs/score/{split}.log",
    benchmark:
        "benchmarks/score/{split}.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        batch_size=config["training"]["eval_batch_size"],
    script:
        "../../scripts/score.py"


rule baseline:
    """Logistic regression on per-track log-mel statistics: the classical point of comparison."""
    input:
        manifest="data/processed/final_feature_manifest.csv",
        status=feature_status_tables,
        vocabulary="data/processed/unified_genres.txt",
        code=script_code("baseline"),
    output:
        scores="results/baseline_scores.csv",
        summary="results/baseline_summary.json",
    log:
        "logs/baseline.log",
    benchmark:
        "benchmarks/baseline.tsv"
    conda:
        PIPELINE_ENV
    threads: 2
    params:
        selection_metric=config["training"]["selection_metric"],
    script:
        "../../scripts/baseline.py"


rule plots:
    """The test confusion matrix of the model and its training curves."""
    input:
        test_scores="results/test_scores.csv",
        # The matrix covers the tracks metrics.json covers: those the baseline scored too.
        baseline_scores="results/baseline_scores.csv",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        training_log="results/training_log.csv",
        code=script_code("plots"),
    output:
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
        "logs/plots.log",
    benchmark:
        "benchmarks/plots.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        model_name=model_display_name(),
    script:
        "../../scripts/plots.py"


rule evaluate:
    """Test-split metrics of the model and the baseline on the same tracks (scikit-learn)."""
    input:
        model="results/model",
        test_scores="results/test_scores.csv",
        baseline_scores="results/baseline_scores.csv",
        baseline_summary="results/baseline_summary.json",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=script_code("evaluate"),
        # Not read: listed so that `results/metrics.json` builds the figures too; ancient(),
        # so that redrawing them never recomputes the metrics.
        figures=ancient(["results/confusion_matrix.png", "results/training_curves.png"]),
    output:
        metrics=report(
            "results/metrics.json",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
        predictions="results/predictions.csv",
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/evaluate.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        subset=config["subset"],
    script:
        "../../scripts/evaluate.py"
