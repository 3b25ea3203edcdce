"""Bad input, case by case: 43 cases across the predict command (15), the workflow config (11),
tracks.csv (10) and audio files (7), and two property-based tests (config values, odd audio).

Each case asserts the exit code or the exception, that the message names the input and what was
expected, that no traceback is printed, and that nothing was written or changed.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fma_genre.data.metadata import MetadataError, write_subset_csv
from fma_genre.features.audio import UnreadableAudio, decode_mono_16k
from fma_genre.io.config_check import ConfigError, check_config
from fma_genre.scoring.predict import main as predict

from paths import CONFIG_SCHEMA, PROJECT_ROOT
from real_format import EXAMPLE_TRACKS, write_tracks_csv
from unit.test_predict import THRESHOLDS, save_model, write_tone

SCHEMA = yaml.safe_load(CONFIG_SCHEMA.read_text())


def snapshot(folder: Path) -> dict:
    """Every file below `folder` with its size and modification time: what a case must not change."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


# --- fma-genre-predict -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """A model (1 s windows) and audio files good and bad, in one folder."""
    folder = tmp_path_factory.mktemp("predict")
    save_model(folder / "model", window_seconds=1.0, label_thresholds=THRESHOLDS)
    write_tone(folder / "good.wav", 3.0, 440)
    write_tone(folder / "short.wav", 0.1, 440)
    (folder / "notes.mp3").write_text("not audio, a text file renamed\n")
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "a_folder.mp3").mkdir()
    (folder / "no_model").mkdir()
    return folder


# (arguments, exit code, what stderr says); paths are relative to the audio fixture's folder.
PREDICT_CASES = [
    (["--batch-size", "0", "good.wav"], 2, "argument --batch-size: expected a whole number above 0, got 0"),
    (
        ["--batch-size", "many", "good.wav"],
        2,
        "argument --batch-size: expected a whole number above 0, got 'many'",
    ),
    (["--top", "-1", "good.wav"], 2, "argument --top: expected a whole number above 0, got -1"),
    (["--top", "0", "good.wav"], 2, "argument --top: expected a whole number above 0, got 0"),
    (
        ["--window-seconds", "-1", "good.wav"],
        2,
        "argument --window-seconds: expected a number above 0, got -1",
    ),
    (["--window-seconds", "0", "good.wav"], 2, "argument --window-seconds: expected a number above 0, got 0"),
    (
        ["--window-seconds", "nan", "good.wav"],
        2,
        "argument --window-seconds: expected a number above 0, got nan",
    ),
    (["--threads", "0", "good.wav"], 2, "argument --threads: expected a whole number above 0, got 0"),
    (["--min-seconds", "-2", "good.wav"], 2, "argument --min-seconds: expected a number above 0, got -2"),
    (
        ["--model", "no/such/model", "good.wav"],
        2,
        "--model no/such/model: no such folder; a model folder holds config.json",
    ),
    (["--model", "no_model", "good.wav"], 2, "--model no_model: no config.json or model.safetensors in it"),
    (["short.wav", "good.wav"], 1, "short.wav: refused: too short: 0.100 s < 0.5 s"),
    (["notes.mp3", "good.wav"], 1, "notes.mp3: refused: undecodable: a text file, not audio"),
    (["a_folder.mp3", "good.wav"], 1, "a_folder.mp3: refused: a folder, not an audio file"),
    (["missing.wav", "good.wav"], 1, "missing.wav: refused: [Errno 2] No such file or directory"),
]


@pytest.mark.parametrize(("arguments", "code", "said"), PREDICT_CASES)
def test_predict_refuses_bad_input_by_name(audio, monkeypatch, capsys, arguments, code, said):
    monkeypatch.chdir(audio)
    before = snapshot(audio)
    with_model = arguments if "--model" in arguments else ["--model", "model", *arguments]
    try:
        returned = predict(with_model)
    except SystemExit as exit:  # argparse's usage errors
        returned = exit.code
    captured = capsys.readouterr()
    assert returned == code and said in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    if code == 1:  # the good clip is scored all the same, the bad one named once
        assert captured.out.startswith("good.wav\n") and captured.err.count("refused") == 1
    else:
        assert captured.out == "" and captured.err.startswith("usage: fma-genre-predict")
    assert snapshot(audio) == before


def test_predict_json_lists_the_refused_files_with_their_reasons(audio, monkeypatch, capsys):
    monkeypatch.chdir(audio)
    assert predict(["--model", "model", "--json", "good.wav", "short.wav"]) == 1
    good, short = json.loads(capsys.readouterr().out)
    assert good["path"] == "good.wav" and good["top"]
    assert short == {"path": "short.wav", "refused": "too short: 0.100 s < 0.5 s"}


# --- the workflow's config, checked before any job ------------------------------------------------

# (config override, what the one-line message says); the demo config underneath.
CONFIG_CASES = [
    ("trainng:\n  epochs: 2\n", "config: unknown key 'trainng' (did you mean 'training'?)"),
    ("training:\n  epoch: 2\n", "config training: unknown key 'epoch' (did you mean 'epochs'?)"),
    (
        "tiny_model: false\nmodel: ./no/such/model\n",
        "config model: './no/such/model' is not a Hugging Face hub id",
    ),
    ("min_clip_seconds: soon\n", "config min_clip_seconds: 'soon' is not of type 'number'"),
    ("training:\n  selection_metric: hamming\n", "config training.selection_metric: 'hamming' is not one of"),
    ("training:\n  batch_size: 0\n", "config training.batch_size: 0 is less than the minimum of 1"),
    ("subset: tiny\n", "config subset: 'tiny' is not one of ['small', 'medium', 'large']"),
    ("seeds: [0, 0]\n", "config seeds: [0, 0] has non-unique elements"),
    (
        "experiments:\n  fast:\n    lr_hed: 0.1\n",
        "config experiments.fast: unknown key 'lr_hed' (did you mean 'lr_head'?)",
    ),
    (
        "experiments:\n  fast:\n    micro_batch_size: 64\n",
        "config experiments.fast.micro_batch_size: 64 is more than its batch_size (16)",
    ),
    ("", "/data: the run writes a folder there, and it is a file"),  # the working directory's `data`
]


def dry_run(workdir: Path, *configfiles: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(PROJECT_ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "-n",
            "results/metrics.json",
            "--configfile",
            str(PROJECT_ROOT / "config/demo.yaml"),
            *map(str, configfiles),
        ],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(("override", "said"), CONFIG_CASES)
def test_a_wrong_config_stops_before_any_job_in_one_line_naming_the_key(tmp_path, override, said):
    config = tmp_path / "wrong.yaml"
    config.write_text(override or "{}\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    if not override:
        (workdir / "data").write_text("a file where the run puts its data folder\n")
    before = snapshot(workdir)
    result = dry_run(workdir, config)
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("Config file")
    ]
    assert result.returncode == 1 and len(lines) == 1 and said in lines[0], lines
    assert "Traceback" not in lines[0] and 'File "' not in lines[0]
    assert snapshot(workdir) == before and not (workdir / "logs").exists()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    key=st.sampled_from(
        ["min_clip_seconds", "feature_threads", "subset", "seeds", "download_retries", "model"]
    ),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-10, 10),
        st.floats(allow_nan=True),
        st.text(max_size=12),
        st.lists(st.integers(-3, 3), max_size=4),
    ),
)
def test_any_config_value_is_accepted_or_refused_in_one_line_naming_its_key(key, value):
    config = {"tiny_model": False, key: value}
    try:
        check_config(config, SCHEMA)
    except ConfigError as error:
        message = str(error)
        assert message.startswith(f"config {key}") and "\n" not in message, message


# --- tracks.csv, checked by the subset stage before it writes -----------------------------------


def with_track(track_id: int, **changes) -> list[tuple]:
    """EXAMPLE_TRACKS with one track changed or added (split, duration, genres, ...)."""
    fields = ("track_id", "split", "subset", "top", "genres", "genres_all", "duration")
    rows = [dict(zip(fields, row)) for row in EXAMPLE_TRACKS]
    base = next((row for row in rows if row["track_id"] == track_id), None)
    if base is None or changes.pop("again", False):
        base = dict(next(iter(rows)), track_id=track_id)
        rows.append(base)
    base.update(changes)
    return [tuple(row[field] for field in fields) for row in rows]


def write_lines(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# (how to write a bad tracks.csv into a folder, what the message says beside the file's name)
TRACKS_CASES = [
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(5, split="validation", again=True)),
        "expected each track_id once, found 1 listed more than once: 5; 1 of them in several splits, a leak between splits (track 5: test and validation)",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(140, again=True, split="training")),
        "expected each track_id once, found 1 listed more than once: 140",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(10, duration="unknown")),
        "column ('track', 'duration') must be a positive number of seconds, found 'unknown' for track 10",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(141, duration=-3)),
        "must be a positive number of seconds, found '-3' for track 141",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(2, duration="")),
        "must be a positive number of seconds, found '' for track 2",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(2, genres="rock")),
        "track 2: column ('track', 'genres') must be a list of genre ids such as [17, 10], found 'rock'",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", with_track(2, split="train")),
        "track 2: column ('set', 'split') must be one of training/validation/test, found 'train'",
    ),
    (
        lambda d: write_tracks_csv(d / "tracks.csv", drop=[("track", "genres_all")]),
        "missing column(s) ('track', 'genres_all'); expected FMA's tracks.csv with 52 columns",
    ),
    (
        lambda d: write_lines(d / "tracks.csv", ",album\n,comments\n"),
        "expected tracks.csv's three header lines (top level, column name, 'track_id'), found fewer lines",
    ),
    (
        lambda d: write_lines(d / "tracks.csv", "a,b\nc,d\ne,f\n"),
        "expected a third header line starting with 'track_id' (the FMA tracks.csv layout), found ['e', 'f']",
    ),
]


@pytest.mark.parametrize(("write", "said"), TRACKS_CASES)
def test_a_malformed_tracks_csv_stops_the_subset_stage_naming_the_file_and_the_track(tmp_path, write, said):
    tracks_csv = write(tmp_path)
    out = tmp_path / "small_subset.csv"
    with pytest.raises(MetadataError) as stopped:
        write_subset_csv(tracks_csv, "small", "data/raw/fma_small", out)
    assert str(stopped.value).startswith(f"{tracks_csv}: ") and said in str(stopped.value), stopped.value
    assert [path.name for path in tmp_path.iterdir()] == ["tracks.csv"]  # nothing written


# --- audio files -------------------------------------------------------------------------------


def write_zero_frames(path: Path) -> Path:
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    return path


# (how to write the file into a folder, the minimum clip length, the reason recorded)
AUDIO_CASES = [
    (
        lambda d: write_lines(d / "notes.mp3", "ID3? no: a text file\n"),
        0.0,
        "undecodable: a text file, not audio",
    ),
    (lambda d: (d / "clip.mp3").mkdir() or d / "clip.mp3", 0.0, "a folder, not an audio file"),
    (lambda d: write_lines(d / "empty.mp3", ""), 0.0, "empty file"),
    (
        lambda d: (d / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(4096)) and d / "noise.mp3",
        0.0,
        "undecodable: ",
    ),
    (lambda d: write_zero_frames(d / "silent.wav"), 0.0, "no frames"),
    (lambda d: write_tone(d / "blip.wav", 0.054, 440), 5.0, "too short: 0.054 s < 5.0 s"),
    (lambda d: write_tone(d / "short.wav", 2.0, 440), 5.0, "too short: 2.0 s < 5.0 s"),
]


@pytest.mark.parametrize(("write", "min_seconds", "reason"), AUDIO_CASES)
def test_a_bad_audio_file_is_refused_with_what_it_is(tmp_path, write, min_seconds, reason):
    path = write(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UnreadableAudio) as refused:
        decode_mono_16k(path, min_seconds)
    assert str(refused.value).startswith(reason), refused.value
    assert "text file" not in str(refused.value) or path.suffix == ".mp3"
    assert snapshot(tmp_path) == before


@settings(max_examples=40, deadline=None, derandomize=True)
@given(head=st.binary(max_size=64), samples=st.integers(0, 800))
def test_any_bytes_or_any_short_clip_decode_or_are_refused_with_a_reason(tmp_path_factory, head, samples):
    folder = tmp_path_factory.mktemp("odd")
    odd = folder / "odd.mp3"
    odd.write_bytes(head)
    tone = (
        write_tone(folder / "tone.wav", samples / 22050, 440)
        if samples
        else write_zero_frames(folder / "tone.wav")
    )
    for path in (odd, tone):
        try:
            waveform = decode_mono_16k(path, min_clip_seconds=0.02)
        except UnreadableAudio as refused:
            assert str(refused).split(":")[0] in {"empty file", "undecodable", "no frames", "too short"}, (
                refused
            )
        else:
            assert waveform.dtype == np.float32 and len(waveform) >= 0.02 * 16000 - 1
