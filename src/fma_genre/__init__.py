"""The FMA music-genre pipeline: the logic behind each Snakemake stage, importable and tested."""
