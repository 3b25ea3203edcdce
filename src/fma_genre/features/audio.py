"""Decoding an audio file into the 16 kHz mono float32 waveform that the log-mel features expect."""

from __future__ import annotations

import os

import numpy as np
import soundfile
import soxr

from fma_genre.features.logmel import SAMPLING_RATE


class UnreadableAudio(Exception):
    """A clip that the pipeline skips; its str is a short reason for the status table."""


def decode_mono_16k(path: str | os.PathLike, min_clip_seconds: float = 0.0) -> np.ndarray:
    """Decode `path` to a float32 mono waveform at 16 kHz.

    Raises `UnreadableAudio` for an empty file, bytes libsndfile cannot decode, a file without
    frames, or a clip shorter than `min_clip_seconds`. A missing file raises `FileNotFoundError`:
    that is a pipeline fault, not a bad clip.
    """
    if os.path.isdir(path):
        raise UnreadableAudio("a folder, not an audio file")
    if os.stat(path).st_size == 0:
        raise UnreadableAudio("empty file")
    try:
        # float32 straight from the decoder: no float64 copy to convert afterwards.
        samples, source_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        what = "a text file, not audio; " if is_text(path) else ""
        raise UnreadableAudio(f"undecodable: {what}{error.error_string}") from error
    n_frames, n_channels = samples.shape
    if n_frames == 0:
        raise UnreadableAudio("no frames")
    check_duration(n_frames / source_rate, min_clip_seconds)
    # HQ is librosa.load's default too (soxr_hq); MQ/LQ would save under 0.5 ms of ~3.5 ms a clip.
    return soxr.resample(downmix(samples), source_rate, SAMPLING_RATE, quality="HQ")


def check_duration(seconds: float, min_clip_seconds: float) -> None:
    """Raise `UnreadableAudio("too short: ...")` if `seconds` is below `min_clip_seconds`."""
    if seconds < min_clip_seconds:
        shown = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.3f}"  # 54 ms is not "0.1 s"
        raise UnreadableAudio(f"too short: {shown} s < {min_clip_seconds:.1f} s")


def is_text(path: str | os.PathLike) -> bool:
    """Whether the file's first KiB is UTF-8 text without NUL bytes (a text file named .mp3)."""
    with open(path, "rb") as file:
        head = file.read(1024)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(head) - 4 and b"\0" not in head  # a character cut at 1 KiB
    return b"\0" not in head


def downmix(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) float32 array into a contiguous mono array."""
    n_channels = samples.shape[1]
    if n_channels == 1:
        return np.ascontiguousarray(samples[:, 0])
    # Column by column: numpy's mean over the short channel axis is ~30x slower, and a BLAS
    # matrix-vector product would start BLAS threads.
    mono = np.add(samples[:, 0], samples[:, 1])
    for channel in range(2, n_channels):
        mono += samples[:, channel]
    mono *= np.float32(1.0 / n_channels)
    return mono
