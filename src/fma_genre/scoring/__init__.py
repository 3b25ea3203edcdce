"""Scoring stage (workflow/rules/scoring.smk): a model's scores in windows of its training crop,
score tables, the score job, and `fma-genre-predict` for any audio file."""
