"""Evaluation stages (workflow/rules/evaluation.smk): metrics (scikit-learn), bootstrap
intervals, the classical baseline, each run's metrics.json and figures, the comparison of runs."""
