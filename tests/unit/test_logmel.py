"""The log-mel frames and model input against transformers' SeamlessM4TFeatureExtractor itself."""

import numpy as np
import pytest
from transformers import SeamlessM4TFeatureExtractor
from transformers.audio_utils import mel_filter_bank, window_function

from fma_genre.features.audio import decode_mono_16k
from fma_genre.features.logmel import (
    MEL_FLOOR,
    centre_for_float16,
    kaldi_log_mel,
    kaldi_mel_filters,
    n_log_mel_frames,
    normalise_and_stack,
    povey_window,
)


@pytest.fixture(scope="module")
def extractor() -> SeamlessM4TFeatureExtractor:
    # w2v-bert-2.0's preprocessor settings
    return SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, sampling_rate=16000, padding_value=1, stride=2
    )


@pytest.fixture(scope="module")
def real_waveform(real_clip) -> np.ndarray:
    return decode_mono_16k(real_clip)


def model_input(extractor, waveform: np.ndarray) -> dict[str, np.ndarray]:
    return extractor(waveform, sampling_rate=16000, return_tensors="np")


def test_filter_bank_and_window_equal_the_extractors():
    reference_filters = mel_filter_bank(
        num_frequency_bins=257,
        num_mel_filters=80,
        min_frequency=20,
        max_frequency=8000,
        sampling_rate=16000,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )
    np.testing.assert_array_equal(kaldi_mel_filters(), reference_filters)
    np.testing.assert_array_equal(povey_window(), window_function(400, "povey", periodic=False))
    # kaldi_log_mel relies on this to skip Kaldi's special pre-emphasis of each frame's first sample
    assert povey_window()[0] == 0.0


def test_log_mel_frames_match_the_extractors_fbank(extractor, real_waveform):
    reference = extractor._extract_fbank_features(real_waveform)
    ours = kaldi_log_mel(real_waveform)
    difference = np.abs(ours - reference)
    print(f"fbank: max abs diff {difference.max():.3g}, mean {difference.mean():.3g}")
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape == (n_log_mel_frames(len(real_waveform)), 80)
    assert difference.max() < 5e-3
    assert difference.mean() < 1e-5


def test_stored_features_give_the_extractors_model_input(extractor, real_waveform):
    stored, _ = centre_for_float16(kaldi_log_mel(real_waveform))
    assert stored.dtype == np.float16
    ours = normalise_and_stack(stored)
    reference = model_input(extractor, real_waveform)["input_features"][0]
    difference = np.abs(ours - reference)
    print(f"model input from float16: max abs diff {difference.max():.3g}, mean {difference.mean():.3g}")
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape == (len(stored) // 2, 160)
    assert difference.max() < 0.01
    assert difference.mean() < 1e-3


def test_centring_keeps_the_model_input_and_beats_plain_float16(real_waveform):
    log_mel = kaldi_log_mel(real_waveform)
    exact = normalise_and_stack(log_mel)
    centred, levels = centre_for_float16(log_mel)
    centred_error = np.abs(normalise_and_stack(centred) - exact).mean()
    plain_error = np.abs(normalise_and_stack(log_mel.astype(np.float16)) - exact).mean()
    print(f"mean abs error of float16 storage: centred {centred_error:.3g}, plain {plain_error:.3g}")
    assert centred_error < plain_error / 5


def test_centred_frames_plus_levels_give_back_the_absolute_log_mel(real_waveform):
    log_mel = kaldi_log_mel(real_waveform)
    centred, levels = centre_for_float16(log_mel)
    assert levels.shape == (80,) and levels.dtype == np.float32
    np.testing.assert_allclose(levels, log_mel.mean(axis=0), rtol=1e-5)
    assert 5 < levels.mean() < 40  # absolute log power levels, not a centred ~0
    restored = centred.astype(np.float32) + levels
    # within float16's resolution of the centred values (~1e-3 near |x| ~ 2)
    assert np.abs(restored - log_mel).max() < 0.02 and np.abs(restored - log_mel).mean() < 1e-3


def test_odd_last_frame_is_dropped_where_the_extractor_pads_and_masks_it(extractor, real_waveform):
    crop = real_waveform[: 160 * 300 + 400]  # 301 frames
    log_mel = kaldi_log_mel(crop)
    assert len(log_mel) == 301
    reference = model_input(extractor, crop)
    # the extractor's last stacked frame holds the odd frame and padding, masked out of attention
    assert reference["input_features"].shape == (1, 151, 160)
    assert reference["attention_mask"][0, -1] == 0
    assert reference["attention_mask"][0, :-1].all()
    ours = normalise_and_stack(log_mel)
    assert ours.shape == (150, 160)
    np.testing.assert_allclose(ours, reference["input_features"][0, :-1], atol=1e-3)


def test_normalise_and_stack_normalises_each_bin_and_leaves_its_input_alone():
    frames = np.random.default_rng(0).normal(5.0, 3.0, size=(6, 80)).astype(np.float16)
    original = frames.copy()
    stacked = normalise_and_stack(frames)
    np.testing.assert_array_equal(frames, original)
    unstacked = stacked.reshape(6, 80)
    np.testing.assert_allclose(unstacked.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(unstacked.std(axis=0, ddof=1), 1.0, atol=1e-5)
    # frame pairs sit side by side: row 1 of the stack is frames 2 and 3
    np.testing.assert_array_equal(stacked[1, :80], unstacked[2])
    np.testing.assert_array_equal(stacked[1, 80:], unstacked[3])


def test_normalise_and_stack_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        normalise_and_stack(np.zeros((1, 80), dtype=np.float16))


@pytest.mark.parametrize(("n_samples", "n_frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2)])
def test_frames_start_every_160_samples_without_padding(n_samples, n_frames):
    assert n_log_mel_frames(n_samples) == n_frames
    assert kaldi_log_mel(np.full(n_samples, 0.1, dtype=np.float32)).shape == (n_frames, 80)


def test_silence_sits_at_the_mel_floor():
    log_mel = kaldi_log_mel(np.zeros(16000, dtype=np.float32))
    np.testing.assert_array_equal(log_mel, np.float32(np.log(np.float32(MEL_FLOOR))))
