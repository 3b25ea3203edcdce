"""The FMA music-genre pipeline: the logic behind each Snakemake stage, importable and tested.

One subpackage per stage (each with its rule file in workflow/rules/), and two that every stage
shares. A subpackage imports only those listed before it here:

- `io`: atomic writes, digests, FMA's folder layout, logs, the rules' code inputs
- `data`: download, unzip, the subset table, the genre vocabulary and multi-hot labels
- `features`: decoding, log-mel frames, the shard job, the manifest, reading splits, crops, batches
- `models`: the classifier, pretrained weights, the saved model, LoRA
- `runtime`: devices and processes (one per GPU, DDP)
- `scoring`: a model's scores in windows, score tables, the score job, `fma-genre-predict`
- `evaluation`: metrics, bootstrap intervals, the baseline, evaluate, figures, the comparison
- `training`: settings, the loop, its steps, validation, resume state, run log, the probe
- `demo`: the synthetic demo dataset (uses `io` only)
"""
