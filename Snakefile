"""FMA music-genre pipeline: from the official FMA archives to a fine-tuned Wav2Vec2-BERT
genre classifier and its metrics. Stages live in workflow/rules/, logic in src/fma_genre/.
"""


# Found from the Snakefile's folder, so that `--directory` runs (the demo) work too.
configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/model.smk"


rule all:
    default_target: True
    input:
        "results/metrics.json",
