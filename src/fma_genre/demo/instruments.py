"""The demo's instruments: drums, bass, leads, plucked strings, piano, pads, vocals, drones,
bells and noise textures, each rendering one stem of a `Song` from wavetables and envelopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from fma_genre.demo.styles import EVERY_8TH, ArtistStyle, GenreStyle

# 22.05 kHz, as some FMA tracks are: the pipeline keeps only 16 kHz (log-mel bands up to 8 kHz),
# and a clip synthesises and encodes in ~0.55x the time of one at 44.1 kHz (measured).
SAMPLE_RATE = 22050
TABLE_SIZE = 2048  # samples per wavetable period


STEPS_PER_BAR = 16  # rhythm grid: sixteenth notes of a 4/4 bar


@dataclass
class Song:
    """Per-track musical decisions shared by all instruments of a clip."""

    rng: np.random.Generator
    style: GenreStyle
    artist: ArtistStyle
    n_samples: int
    step_s: float  # duration of a sixteenth note
    offset_s: float  # the clip starts this far into the first bar, so downbeats do not align
    bass_root_midi: int
    progression: tuple[int, ...]  # scale degree of each bar's chord, cycled

    @property
    def seconds(self) -> float:
        return self.n_samples / SAMPLE_RATE

    def n_bars(self) -> int:
        return int(np.ceil((self.seconds + self.offset_s) / (self.step_s * STEPS_PER_BAR))) + 1

    def midi(self, degree: int, octave: int = 0) -> int:
        """MIDI note of a scale degree (may exceed the scale length) above the bass root."""
        scale = self.style.scale
        return self.bass_root_midi + 12 * (octave + degree // len(scale)) + scale[degree % len(scale)]

    def chord(self, bar: int, octave: int = 0) -> list[int]:
        """MIDI notes of the triad (stacked scale thirds) played in a bar."""
        degree = self.progression[bar % len(self.progression)]
        return [self.midi(degree + third, octave) for third in (0, 2, 4)]

    def grid_onsets(self, steps: tuple[int, ...], keep: float = 1.0) -> Iterator[tuple[float, int, int]]:
        """(time in the clip, bar, step) of each listed step of each bar, each kept with probability `keep`."""
        for bar in range(self.n_bars()):
            for step in steps:
                onset = (bar * STEPS_PER_BAR + step) * self.step_s - self.offset_s
                if 0 <= onset < self.seconds and self.rng.random() < keep:
                    yield onset, bar, step


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _harmonic_table(amplitudes: np.ndarray) -> np.ndarray:
    """One period of the sum of harmonics 1..len(amplitudes) with these amplitudes, peak 1."""
    harmonics = np.arange(1, len(amplitudes) + 1)[:, None]
    phase = np.arange(TABLE_SIZE)[None, :] / TABLE_SIZE
    table = (amplitudes[:, None] * np.sin(2 * np.pi * harmonics * phase)).sum(axis=0)
    return (table / np.abs(table).max()).astype(np.float32)


def _rolloff_table(n_harmonics: int, exponent: float) -> np.ndarray:
    return _harmonic_table(np.arange(1, n_harmonics + 1, dtype=float) ** -exponent)


@dataclass(frozen=True)
class Voice:
    """How a pitched instrument sounds: its wavetable and amplitude envelope."""

    table: np.ndarray
    attack_s: float = 0.005
    decay_s: float = np.inf
    release_s: float = 0.03
    vibrato: float = 0.0  # relative depth of a 5.5 Hz pitch vibrato
    dull_table: np.ndarray | None = None  # crossfaded to after `bright_s`, like a plucked string
    bright_s: float = 0.1


def _render_notes(n_samples: int, voice: Voice, notes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Sum of notes given as (onset s, held s, frequency Hz, amplitude), each rendered only where it sounds."""
    out = np.zeros(n_samples, dtype=np.float32)
    for onset, held_s, freq, amplitude in notes:
        start = int(onset * SAMPLE_RATE)
        length = min(int((held_s + voice.release_s) * SAMPLE_RATE), n_samples - start)
        if length <= 0:
            continue
        t = np.arange(length) / SAMPLE_RATE
        cycles = freq * t
        if voice.vibrato:  # the integral of freq * (1 + vibrato * sin(2 pi 5.5 t))
            cycles += freq * voice.vibrato * (1 - np.cos(2 * np.pi * 5.5 * t)) / (2 * np.pi * 5.5)
        index = ((cycles % 1.0) * TABLE_SIZE).astype(np.intp)
        wave = voice.table[index]
        t = t.astype(np.float32)
        if voice.dull_table is not None:
            brightness = np.exp(t * np.float32(-1 / voice.bright_s))
            wave = brightness * wave + (1 - brightness) * voice.dull_table[index]
        envelope = np.minimum(t * np.float32(1 / voice.attack_s), np.float32(1.0))
        envelope *= np.clip((held_s + voice.release_s - t) * np.float32(1 / voice.release_s), 0.0, 1.0)
        if np.isfinite(voice.decay_s):
            envelope *= np.exp(t * np.float32(-1 / voice.decay_s))
        out[start : start + length] += np.float32(amplitude) * envelope * wave
    return out


def _add_hit(stem: np.ndarray, hit: np.ndarray, onset: float, amplitude: float) -> None:
    """Add the sample `hit` into `stem` from `onset` s on, cut at the stem's end."""
    start = int(onset * SAMPLE_RATE)
    length = min(len(hit), len(stem) - start)
    stem[start : start + length] += np.float32(amplitude) * hit[:length]


def _place_hits(n_samples: int, hit: np.ndarray, onsets: list[tuple[float, float]]) -> np.ndarray:
    """A stem holding copies of the sample `hit` at each (onset s, amplitude)."""
    stem = np.zeros(n_samples, dtype=np.float32)
    for onset, amplitude in onsets:
        _add_hit(stem, hit, onset, amplitude)
    return stem


def _decaying(seconds: float, decay_s: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return t, np.exp(-t / decay_s)


def _drum_onsets(song: Song, steps: tuple[int, ...]) -> list[tuple[float, float]]:
    """The pattern's hits with a few dropped, plus occasional quiet ghost hits on other steps."""
    onsets = [(onset, song.rng.uniform(0.8, 1.0)) for onset, _, _ in song.grid_onsets(steps, keep=0.95)]
    others = tuple(step for step in range(STEPS_PER_BAR) if step not in steps)
    onsets += [(onset, song.rng.uniform(0.2, 0.4)) for onset, _, _ in song.grid_onsets(others, keep=0.04)]
    return onsets


def _kick(song: Song) -> np.ndarray:
    t, envelope = _decaying(0.6, song.style.kick_decay_s)
    base_hz = song.style.kick_hz * song.artist.drum_pitch
    cycles = np.cumsum(base_hz * (1 + 2.5 * np.exp(-t / 0.03))) / SAMPLE_RATE  # fast pitch drop
    hit = np.sin(2 * np.pi * cycles) * envelope
    return _place_hits(song.n_samples, hit.astype(np.float32), _drum_onsets(song, song.style.kick_steps))


def _snare(song: Song) -> np.ndarray:
    t, envelope = _decaying(0.35, 0.09)
    rattle = np.diff(song.rng.standard_normal(len(t) + 1)) / 2  # high-passed noise
    body = np.sin(2 * np.pi * 185 * song.artist.drum_pitch * t) * np.exp(-t / 0.04)
    hit = (0.7 * rattle + 0.6 * body) * envelope
    return _place_hits(song.n_samples, hit.astype(np.float32), _drum_onsets(song, song.style.snare_steps))


def _hat(song: Song) -> np.ndarray:
    t, envelope = _decaying(0.15, 0.025)
    sizzle = np.diff(song.rng.standard_normal(len(t) + 2), n=2) / 4  # strongly high-passed noise
    return _place_hits(
        song.n_samples, (sizzle * envelope).astype(np.float32), _drum_onsets(song, song.style.hat_steps)
    )


def _hand_drum(song: Song) -> np.ndarray:
    """Two tunings, low on the downbeats, high elsewhere, like a darbuka's dum and tek."""
    t, envelope = _decaying(0.4, 0.12)
    stem = np.zeros(song.n_samples, dtype=np.float32)
    for tuning_hz, downbeat in ((110.0, True), (330.0, False)):
        cycles = np.cumsum(tuning_hz * song.artist.drum_pitch * (1 + 0.5 * np.exp(-t / 0.02))) / SAMPLE_RATE
        hit = (np.sin(2 * np.pi * cycles) * envelope).astype(np.float32)
        steps = tuple(s for s in song.style.hand_drum_steps if (s % 8 == 0) == downbeat)
        stem += _place_hits(song.n_samples, hit, _drum_onsets(song, steps))
    return stem


def _bass(song: Song) -> np.ndarray:
    voice = Voice(_rolloff_table(6, song.artist.brightness + 1.5), decay_s=0.6, release_s=0.05)
    held_s = 1.8 * song.step_s
    notes = [
        (onset, held_s, _hz(song.chord(bar)[0]), 0.6)
        for onset, bar, _ in song.grid_onsets(song.style.bass_steps)
    ]
    return _render_notes(song.n_samples, voice, notes)


def _saw_lead(song: Song) -> np.ndarray:
    """Short synth stabs arpeggiating the chord in eighth notes, two octaves up."""
    voice = Voice(_rolloff_table(30, song.artist.brightness), decay_s=0.15, release_s=0.02)
    notes = []
    for onset, bar, step in song.grid_onsets(EVERY_8TH, keep=0.85):
        chord = song.chord(bar, octave=2)
        notes.append((onset, 1.5 * song.step_s, _hz(chord[(step // 2) % 3]), 0.3))
    return _render_notes(song.n_samples, voice, notes)


def _pluck(song: Song) -> np.ndarray:
    """Plucked strings: a bright attack fading to a dull tone, picking the chord in eighth notes."""
    voice = Voice(
        _rolloff_table(20, song.artist.brightness),
        decay_s=0.7,
        release_s=0.1,
        dull_table=_rolloff_table(6, 3.0),
        bright_s=0.08,
    )
    pattern = song.rng.permutation(4)  # this track's picking order: bass note, then three chord tones
    notes = []
    for onset, bar, step in song.grid_onsets(EVERY_8TH, keep=0.9):
        chord = song.chord(bar, octave=1)
        tones = [chord[0] - 12, *chord]
        notes.append((onset, 4 * song.step_s, _hz(tones[pattern[(step // 2) % 4]]), 0.4))
    return _render_notes(song.n_samples, voice, notes)


def _power_chord(song: Song) -> np.ndarray:
    """Root, fifth and octave of each bar's chord, chugged in eighth notes and overdriven."""
    voice = Voice(_rolloff_table(20, song.artist.brightness), decay_s=0.8, release_s=0.02)
    notes = []
    for onset, bar, _ in song.grid_onsets(EVERY_8TH):
        root = song.chord(bar, octave=1)[0]
        notes += [(onset, 1.8 * song.step_s, _hz(root + interval), 0.3) for interval in (0, 7, 12)]
    stem = _render_notes(song.n_samples, voice, notes)
    return np.tanh(5.0 * stem) * 0.5


def _piano(song: Song) -> np.ndarray:
    """A chord on each downbeat and a melody in quarter notes, decaying like struck strings."""
    voice = Voice(
        _rolloff_table(12, song.artist.brightness + 0.5),
        decay_s=1.0,
        release_s=0.15,
        dull_table=_rolloff_table(4, 2.0),
        bright_s=0.3,
    )
    notes = []
    for onset, bar, _ in song.grid_onsets((0,)):
        notes += [(onset, 8 * song.step_s, _hz(note), 0.25) for note in song.chord(bar, octave=1)]
    degree = 7
    for onset, _, _ in song.grid_onsets((0, 4, 8, 12), keep=0.7):
        degree = int(np.clip(degree + song.rng.integers(-2, 3), 3, 13))
        notes.append((onset, 4 * song.step_s, _hz(song.midi(degree, octave=2)), 0.3))
    return _render_notes(song.n_samples, voice, notes)


def _pad(song: Song) -> np.ndarray:
    """Sustained string-like chords, one per bar, swelling in and out."""
    voice = Voice(
        _rolloff_table(16, song.artist.brightness + 0.8), attack_s=0.3, release_s=0.4, vibrato=0.004
    )
    notes = []
    for onset, bar, _ in song.grid_onsets((0,)):
        notes += [(onset, 15 * song.step_s, _hz(note), 0.15) for note in song.chord(bar, octave=1)]
    return _render_notes(song.n_samples, voice, notes)


# Formant frequencies (Hz) of the vowels a, e, i, o, u.
VOWEL_FORMANTS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))


def _vowel_table(f0_hz: float, formants: tuple[int, ...]) -> np.ndarray:
    """A voiced vowel at `f0_hz`: a glottal-like harmonic source shaped by three formant peaks."""
    harmonic_hz = f0_hz * np.arange(1, int(4000 / f0_hz) + 1)
    envelope = sum(
        np.exp(-(((harmonic_hz - formant) / 120.0) ** 2)) * gain
        for formant, gain in zip(formants, (1.0, 0.6, 0.3))
    )
    return _harmonic_table((0.05 + envelope) / np.sqrt(np.arange(1, len(harmonic_hz) + 1)))


def _vocal(song: Song) -> np.ndarray:
    """Formant bursts: rapped syllables on the sixteenth grid, or sung held notes with vibrato."""
    f0_hz = song.artist.vocal_hz
    tables = [_vowel_table(f0_hz, formants) for formants in VOWEL_FORMANTS]
    notes_by_vowel: list[list[tuple[float, float, float, float]]] = [[] for _ in tables]
    if song.style.vocal_style == "rap":
        voices = [Voice(table, attack_s=0.01, decay_s=0.12, release_s=0.03, vibrato=0.01) for table in tables]
        phrase_bars = song.rng.random(song.n_bars()) < 0.75
        for onset, bar, _ in song.grid_onsets(tuple(range(STEPS_PER_BAR)), keep=0.55):
            if phrase_bars[bar]:
                syllable = (onset, 0.8 * song.step_s, f0_hz * song.rng.uniform(0.92, 1.1), 0.6)
                notes_by_vowel[song.rng.integers(len(tables))].append(syllable)
    else:
        voices = [Voice(table, attack_s=0.05, release_s=0.12, vibrato=0.015) for table in tables]
        scale = song.style.scale
        degree, onset_step = 0, 0
        while onset_step * song.step_s < song.seconds:
            held_steps = int(song.rng.choice((2, 4, 4, 6, 8)))
            if song.rng.random() < 0.75:  # otherwise a rest
                degree = int(np.clip(degree + song.rng.integers(-2, 3), -3, 7))
                note_hz = f0_hz * 2 ** (scale[degree % len(scale)] / 12 + degree // len(scale))
                note = (onset_step * song.step_s, (held_steps - 0.5) * song.step_s, note_hz, 0.5)
                notes_by_vowel[song.rng.integers(len(tables))].append(note)
            onset_step += held_steps
    return sum(_render_notes(song.n_samples, voice, notes) for voice, notes in zip(voices, notes_by_vowel))


def _drone(song: Song) -> np.ndarray:
    """A buzzy sustained root and fifth through the whole clip, slowly swelling."""
    voice = Voice(_rolloff_table(40, song.artist.brightness - 0.2), attack_s=0.5, release_s=0.01)
    root = song.bass_root_midi + 12
    notes = [(0.0, song.seconds, _hz(root), 0.25), (0.0, song.seconds, _hz(root + 7), 0.15)]
    stem = _render_notes(song.n_samples, voice, notes)
    t = np.arange(song.n_samples) / SAMPLE_RATE
    swell_hz = song.rng.uniform(0.1, 0.3)
    return stem * (0.7 + 0.3 * np.sin(2 * np.pi * swell_hz * t + song.rng.uniform(0, 2 * np.pi))).astype(
        np.float32
    )


def _bell(song: Song) -> np.ndarray:
    """Sparse struck bells: inharmonic partials, the higher ones dying first."""
    stem = np.zeros(song.n_samples, dtype=np.float32)
    t = np.arange(int(2.5 * SAMPLE_RATE)) / SAMPLE_RATE
    for onset, _, _ in song.grid_onsets((0, 8), keep=0.3):
        fundamental_hz = _hz(song.midi(int(song.rng.integers(0, 8)), octave=3))
        hit = sum(
            gain * np.sin(2 * np.pi * ratio * fundamental_hz * t) * np.exp(-t / decay_s)
            for ratio, gain, decay_s in (
                (1.0, 1.0, 1.2),
                (2.76, 0.5, 0.6),
                (5.40, 0.3, 0.3),
                (8.93, 0.2, 0.15),
            )
        )
        _add_hit(stem, hit.astype(np.float32), onset, 0.3)
    return stem


def _noise_texture(song: Song) -> np.ndarray:
    """Bands of noise fading in and out independently, sprinkled with short high glitches."""
    n = song.n_samples
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE).astype(np.float32)
    spectrum = song.rng.standard_normal(len(freqs), dtype=np.float32) + 1j * song.rng.standard_normal(
        len(freqs), dtype=np.float32
    )  # of white noise
    texture = np.zeros(n, dtype=np.float32)
    control_points = np.linspace(0, n, max(4, int(song.seconds)))
    for _ in range(3):
        centre_hz = np.exp(song.rng.uniform(np.log(200), np.log(6000)))
        octaves_off = np.log2(np.maximum(freqs, np.float32(1.0)) / np.float32(centre_hz))
        band_gain = np.exp(-((octaves_off / np.float32(0.36)) ** 2))
        band = np.fft.irfft(spectrum * band_gain, n=n)
        swell = np.interp(np.arange(n), control_points, song.rng.random(len(control_points)) ** 2)
        texture += (band / (band.std() + 1e-9) * swell).astype(np.float32)
    t, envelope = _decaying(0.04, 0.01)
    glitches = [
        (song.rng.uniform(0, song.seconds), song.rng.uniform(0.3, 1.0)) for _ in range(int(2 * song.seconds))
    ]
    blip = (np.sin(2 * np.pi * song.rng.uniform(3000, 8000) * t) * envelope).astype(np.float32)
    return 0.12 * texture + _place_hits(n, blip, glitches)


INSTRUMENTS: dict[str, Callable[[Song], np.ndarray]] = {
    "kick": _kick,
    "snare": _snare,
    "hat": _hat,
    "hand_drum": _hand_drum,
    "bass": _bass,
    "saw_lead": _saw_lead,
    "pluck": _pluck,
    "power_chord": _power_chord,
    "piano": _piano,
    "pad": _pad,
    "vocal": _vocal,
    "drone": _drone,
    "bell": _bell,
    "noise_texture": _noise_texture,
}
