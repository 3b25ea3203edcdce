"""Feature stages (workflow/rules/features.smk): MP3 to log-mel frames per FMA folder, the
manifest; and reading them back: splits, training crops and scoring windows, model-input batches."""
