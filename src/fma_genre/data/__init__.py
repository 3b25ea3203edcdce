"""Data stages (workflow/rules/data.smk): download and verify the archives, unzip, the subset
table from tracks.csv, the genre vocabulary and multi-hot labels."""
