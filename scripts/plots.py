"""Rule plots: the test confusion matrix and the training curves."""

from fma_genre.evaluation.plots import draw_figures
from fma_genre.io.logs import log_to

log_to(snakemake.log[0])
draw_figures(
    test_scores_csv=snakemake.input.test_scores,
    baseline_scores_csv=snakemake.input.baseline_scores,
    manifest_csv=snakemake.input.manifest,
    vocabulary_tsv=snakemake.input.vocabulary,
    training_log_csv=snakemake.input.training_log,
    confusion_matrix_png=snakemake.output.confusion_matrix,
    training_curves_png=snakemake.output.training_curves,
    model_name=snakemake.params.model_name,
)
