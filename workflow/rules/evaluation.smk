"""Evaluation stages (src/fma_genre/evaluation/): the scikit-learn baseline; per experiment and
seed the figures and the metrics; the comparison of every experiment.
"""


localrules:
    compare_experiments,


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
    """The test confusion matrix of one experiment and seed, and its training curves."""
    input:
        test_scores=run_file("test_scores.csv"),
        # The matrix covers the tracks metrics.json covers: those the baseline scored too.
        baseline_scores="results/baseline_scores.csv",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        training_log=run_file("training_log.csv"),
        code=script_code("plots"),
    output:
        confusion_matrix=report(
            run_file("confusion_matrix.png"),
            caption="../report/confusion_matrix.rst",
            category="Experiment {experiment}",
            subcategory="seed {seed}",
        ),
        training_curves=report(
            run_file("training_curves.png"),
            caption="../report/training_curves.rst",
            category="Experiment {experiment}",
            subcategory="seed {seed}",
        ),
    log:
        "logs/plots/{experiment}/seed{seed}.log",
    benchmark:
        "benchmarks/plots/{experiment}/seed{seed}.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        model_name=lambda wildcards: f"{model_display_name()}, {wildcards.experiment} seed {wildcards.seed}",
    script:
        "../../scripts/plots.py"


rule evaluate:
    """Test-split metrics of one experiment and seed and of the baseline on the same tracks
    (scikit-learn), with bootstrap intervals over the test tracks."""
    input:
        model=run_file("model"),
        test_scores=run_file("test_scores.csv"),
        baseline_scores="results/baseline_scores.csv",
        baseline_summary="results/baseline_summary.json",
        manifest="data/processed/final_feature_manifest.csv",
        vocabulary="data/processed/unified_genres.txt",
        code=script_code("evaluate"),
        # Not read: listed so that the metrics build the figures too; ancient(), so that
        # redrawing them never recomputes the metrics.
        figures=ancient(
            [run_file("confusion_matrix.png"), run_file("training_curves.png")]
        ),
    output:
        metrics=run_file("metrics.json"),
        predictions=run_file("predictions.csv"),
    log:
        "logs/evaluate/{experiment}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{experiment}/seed{seed}.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        subset=config["subset"],
    script:
        "../../scripts/evaluate.py"


rule compare_experiments:
    """Every experiment and seed side by side, with the spread over seeds and the baseline;
    results/metrics.json (the primary run's metrics, and every experiment's)."""
    input:
        runs=every_run("metrics.json"),
        primary_predictions=primary_run("predictions.csv"),
        primary_model="results/model",
        code=script_code("compare_experiments"),
    output:
        metrics=report(
            "results/metrics.json",
            caption="../report/metrics.rst",
            category="Evaluation",
        ),
        table=report(
            "results/experiments.csv",
            caption="../report/experiments_table.rst",
            category="Evaluation",
        ),
        figure=report(
            "results/experiments.png",
            caption="../report/experiments.rst",
            category="Evaluation",
        ),
        predictions="results/predictions.csv",
    log:
        "logs/compare_experiments.log",
    benchmark:
        "benchmarks/compare_experiments.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    params:
        runs=lambda wildcards: [
            dict(experiment=e, seed=s) for e in EXPERIMENTS for s in SEEDS
        ],
        overrides=experiment_overrides(config),
    script:
        "../../scripts/compare_experiments.py"
