"""Rule train: fine-tune Wav2Vec2-BERT; the best validation epoch goes to results/model."""

from fma_genre.logs import log_to
from fma_genre.train import train

log_to(snakemake.log[0])
train(
    snakemake.input.manifest,
    snakemake.input.vocabulary,
    snakemake.input.weights,
    snakemake.output.model,
    snakemake.output.training_log,
    snakemake.params.state_dir,
    threads=snakemake.threads,
    **snakemake.params.training,
)
