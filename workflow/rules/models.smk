"""Model stages (src/fma_genre/models/): the pretrained weights every training starts from, and
results/model, the primary run's trained model."""


localrules:
    model_weights,
    primary_model,


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
