"""One synthetic demo clip: the artist's instruments mixed over coloured background noise,
encoded as MP3; or, for a few tracks, a deliberately broken file, as FMA has some.

Everything derives from the track's seed: the same job gives byte-identical bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from fma_genre.demo.instruments import INSTRUMENTS, SAMPLE_RATE, STEPS_PER_BAR, Song
from fma_genre.demo.styles import GENRE_STYLES, ArtistStyle

SHORT_CLIP_SECONDS = 2.0


MP3_COMPRESSION_LEVEL = 0.8


@dataclass(frozen=True)
class ClipJob:
    """What a worker needs to render one track's file; the track's id seeds its randomness."""

    track_id: int
    artist: ArtistStyle
    kind: str  # "audio", or one of the broken kinds: "empty", "short", "not_audio"
    clip_seconds: float
    seed: int


def _coloured_noise(rng: np.random.Generator, shape: tuple[int, ...], colour: float) -> np.ndarray:
    """Gaussian noise whose power falls as frequency**-colour, unit RMS along the last axis."""
    n_samples = shape[-1]
    freqs = np.fft.rfftfreq(n_samples, 1 / SAMPLE_RATE).astype(np.float32)
    # White Gaussian noise has independent complex Gaussian Fourier coefficients: draw those directly.
    spectrum_shape = (*shape[:-1], len(freqs))
    spectrum = rng.standard_normal(spectrum_shape, dtype=np.float32) + 1j * rng.standard_normal(
        spectrum_shape, dtype=np.float32
    )
    spectrum *= np.maximum(freqs, np.float32(20.0)) ** np.float32(-colour / 2)
    noise = np.fft.irfft(spectrum, n=n_samples, axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def synthesize_clip(artist: ArtistStyle, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A mono float32 clip of the artist's genre, peak below 1. Mono, as some FMA tracks are:
    LAME encodes it in half the time of stereo, and encoding is most of the demo's set-up (the
    real stereo clip of the tests covers the downmix)."""
    style = GENRE_STYLES[artist.genre]
    tempo_bpm = artist.tempo_bpm * rng.uniform(0.97, 1.03)
    step_s = 60.0 / tempo_bpm / 4
    song = Song(
        rng=rng,
        style=style,
        artist=artist,
        n_samples=int(round(seconds * SAMPLE_RATE)),
        step_s=step_s,
        offset_s=rng.uniform(0, STEPS_PER_BAR * step_s),
        bass_root_midi=artist.bass_root_midi + int(rng.choice((-2, 0, 0, 0, 2))),
        progression=tuple(int(d) for d in rng.choice((0, 3, 4, 5), size=4)),
    )
    mix = np.zeros(song.n_samples, dtype=np.float32)
    for name, gain in artist.instruments.items():
        if rng.random() < 0.05:  # an instrument sits out now and then, so no single one defines a genre
            continue
        mix += np.float32(gain) * INSTRUMENTS[name](song)
    music_rms = float(np.sqrt(np.mean(np.square(mix)))) + 1e-6
    snr_db = rng.uniform(20, 40)
    noise = _coloured_noise(rng, mix.shape, artist.noise_colour + rng.uniform(-0.2, 0.2))
    mix += noise * np.float32(music_rms * 10 ** (-snr_db / 20))
    peak_db = rng.uniform(-14, -1)
    mix *= np.float32(10 ** (peak_db / 20) / np.abs(mix).max())
    return mix


def encode_mp3(samples: np.ndarray) -> bytes:
    """MP3 bytes of a clip at SAMPLE_RATE. LAME's VBR at libsndfile's compression 0.8 encodes
    faster than the default and makes smaller files. Encoding is most of the generation time."""
    buffer = io.BytesIO()
    sf.write(
        buffer,
        samples,
        SAMPLE_RATE,
        format="MP3",
        subtype="MPEG_LAYER_III",
        bitrate_mode="VARIABLE",
        compression_level=MP3_COMPRESSION_LEVEL,
    )
    return buffer.getvalue()


# A download error page saved under an .mp3 name: bytes no audio decoder accepts.
NOT_AUDIO_BYTES = (
    b"<html><head><title>503 Service Unavailable</title></head>\n"
    b"<body><h1>Service Unavailable</h1></body></html>\n"
)


def render_clip(job: ClipJob) -> bytes:
    """The MP3 file of one track (or its deliberately broken stand-in)."""
    if job.kind == "empty":
        return b""
    if job.kind == "not_audio":
        return NOT_AUDIO_BYTES
    seconds = SHORT_CLIP_SECONDS if job.kind == "short" else job.clip_seconds
    rng = np.random.default_rng([job.seed, job.track_id])
    return encode_mp3(synthesize_clip(job.artist, rng, seconds))
