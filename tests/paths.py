"""Where the project and the real FMA sample files (../shared/fma-samples) live."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = PROJECT_ROOT.parent / "shared" / "fma-samples"
REAL_CLIP = SHARED_SAMPLES / "fma_small" / "000" / "000002.mp3"
REAL_GENRES_CSV = SHARED_SAMPLES / "fma_metadata" / "genres.csv"
REAL_METADATA_CHECKSUMS = SHARED_SAMPLES / "fma_metadata" / "checksums"
CONFIG_SCHEMA = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
