"""Decoding clips to 16 kHz mono, and the reasons a clip is skipped."""

import numpy as np
import pytest
import soundfile
import soxr

from fma_genre.features.audio import UnreadableAudio, check_duration, decode_mono_16k


def write_sine_mp3(path, seconds: float, sampling_rate: int = 44100) -> None:
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sampling_rate, format="MP3")


def test_real_clip_is_the_16k_average_of_its_channels(real_clip):
    stereo, source_rate = soundfile.read(real_clip, dtype="float32")
    assert (source_rate, stereo.shape[1]) == (44100, 2)
    waveform = decode_mono_16k(real_clip)
    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert len(waveform) == round(len(stereo) * 16000 / 44100)
    # resampling is linear, so resampling each channel and averaging gives the same waveform
    channels_resampled = [soxr.resample(np.ascontiguousarray(stereo[:, c]), 44100, 16000) for c in (0, 1)]
    np.testing.assert_allclose(waveform, (channels_resampled[0] + channels_resampled[1]) / 2, atol=1e-5)


def test_16k_mono_input_is_returned_unchanged(tmp_path):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    soundfile.write(tmp_path / "mono.wav", samples, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(decode_mono_16k(tmp_path / "mono.wav"), samples)


def test_empty_file_is_unreadable(tmp_path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(UnreadableAudio) as raised:
        decode_mono_16k(tmp_path / "empty.mp3")
    assert str(raised.value) == "empty file"


def test_random_bytes_are_undecodable_with_libsndfiles_reason(tmp_path):
    (tmp_path / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UnreadableAudio) as raised:
        decode_mono_16k(tmp_path / "noise.mp3")
    reason = str(raised.value)
    assert reason.startswith("undecodable: ")
    assert len(reason) > len("undecodable: ")


def test_file_without_frames_is_unreadable(tmp_path):
    soundfile.write(tmp_path / "no_frames.wav", np.zeros((0, 2), dtype=np.float32), 44100)
    with pytest.raises(UnreadableAudio) as raised:
        decode_mono_16k(tmp_path / "no_frames.wav")
    assert str(raised.value) == "no frames"


def test_short_clip_is_rejected_only_below_the_minimum(tmp_path):
    write_sine_mp3(tmp_path / "short.mp3", seconds=2.0)
    with pytest.raises(UnreadableAudio) as raised:
        decode_mono_16k(tmp_path / "short.mp3", min_clip_seconds=5.0)
    assert str(raised.value) == "too short: 2.0 s < 5.0 s"
    assert len(decode_mono_16k(tmp_path / "short.mp3", min_clip_seconds=2.0)) == 32000


def test_duration_at_the_minimum_passes():
    check_duration(5.0, 5.0)
    with pytest.raises(UnreadableAudio, match=r"^too short: 4\.9 s < 5\.0 s$"):
        check_duration(4.94, 5.0)


def test_missing_file_is_a_fault_not_a_bad_clip(tmp_path):
    with pytest.raises(FileNotFoundError):
        decode_mono_16k(tmp_path / "missing.mp3")
