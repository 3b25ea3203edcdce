"""FMA music-genre pipeline: from the official FMA archives to a fine-tuned Wav2Vec2-BERT
genre classifier and its metrics. One rule file per stage in workflow/rules/, each with its
subpackage of src/fma_genre/ (data.smk -> fma_genre/data/, ...).
"""


# Found from the Snakefile's folder, so that `--directory` runs (the demo) work too.
configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/scoring.smk"
include: "workflow/rules/evaluation.smk"


rule all:
    default_target: True
    input:
        "results/metrics.json",
