"""Model stages: pretrained weights; per experiment and seed, training (GPU), scoring (GPU),
figures and evaluation; the scikit-learn baseline; the comparison of every experiment.
"""


localrules:
    model_weights,
    primary_model,
    compare_experiments,


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
    script:
        "../../scripts/model_weights.py"


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


rule primary_model:
    """results/model: the primary experiment's first seed, where predict and the pipeline look."""
    input:
        model=primary_run("model"),
    output:
        model=directory("results/model"),
    log:
        "logs/primary_model.log",
    benchmark:
        "benchmarks/primary_model.tsv"
    conda:
        PIPELINE_ENV
    threads: 1
    script:
        "../../scripts/primary_model.py"


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
