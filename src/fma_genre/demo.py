"""The built-in demo dataset: synthetic music packed exactly like the real FMA archives.

`write_demo_archives` writes `fma_metadata.zip` (README.txt, checksums, the real genres.csv and
a 52-column tracks.csv), `fma_small.zip` (README.txt, checksums, NNN/NNNNNN.mp3) and a
`SHA1SUMS` of the two, so that the whole pipeline runs offline on CPU in minutes.

The audio is a toy tagged-music generator: each of fma_small's eight genres has its own mix of
instruments (several shared between genres at different weights), tempo, rhythm, scale and
noise colour; every artist varies key, tempo and timbre; every track draws its own notes,
background-noise SNR and gain. Like FMA, a few clips are broken (empty, 2 s, not audio) and a
few tracks lie outside the small subset. Everything derives from `seed`: the same arguments
give byte-identical archives, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.resources
import io
import logging
import multiprocessing
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from fma_genre.atomic import atomic_path, write_text

log = logging.getLogger(__name__)

# 22.05 kHz, as some FMA tracks are: the pipeline keeps only 16 kHz (log-mel bands up to 8 kHz),
# and a clip synthesises and encodes in ~0.55x the time of one at 44.1 kHz (measured).
SAMPLE_RATE = 22050
ZIP_DATE_TIME = (2017, 4, 1, 0, 0, 0)  # fixed member dates keep the archives byte-identical across runs
SHORT_CLIP_SECONDS = 2.0
# Genres of the tracks outside the small subset (rows in tracks.csv, no audio): Jazz, Classical,
# Blues, Experimental Pop + Singer-Songwriter (two top-level genres, no genre_top, like track
# 20), Rock, Electronic.
EXTRA_TRACK_GENRE_IDS = ([4], [5], [3], [76, 103], [12], [15])
TABLE_SIZE = 2048  # samples per wavetable period
STEPS_PER_BAR = 16  # rhythm grid: sixteenth notes of a 4/4 bar
MP3_COMPRESSION_LEVEL = 0.8

METADATA_ARCHIVE = "fma_metadata.zip"
AUDIO_ARCHIVE = "fma_small.zip"
SHA1SUMS = "SHA1SUMS"

# tracks.csv's 52 columns in the real order.
TRACKS_COLUMNS = [
    *(("album", name) for name in (
        "comments", "date_created", "date_released", "engineer", "favorites", "id", "information",
        "listens", "producer", "tags", "title", "tracks", "type")),
    *(("artist", name) for name in (
        "active_year_begin", "active_year_end", "associated_labels", "bio", "comments",
        "date_created", "favorites", "id", "latitude", "location", "longitude", "members", "name",
        "related_projects", "tags", "website", "wikipedia_page")),
    ("set", "split"),
    ("set", "subset"),
    *(("track", name) for name in (
        "bit_rate", "comments", "composer", "date_created", "date_recorded", "duration",
        "favorites", "genre_top", "genres", "genres_all", "information", "interest",
        "language_code", "license", "listens", "lyricist", "number", "publisher", "tags", "title")),
]


@dataclass(frozen=True)
class GenreStyle:
    """What makes a genre recognisable: instruments and their weights, rhythm, tempo, scale, noise."""

    instruments: dict[str, float]  # instrument name -> gain; absent instruments are not played
    tempo_bpm: tuple[float, float]
    scale: tuple[int, ...]  # semitones above the root of each scale degree
    bass_root_midi: tuple[int, int]
    kick_steps: tuple[int, ...] = ()  # sixteenth-note steps of a bar that hold a hit
    snare_steps: tuple[int, ...] = ()
    hat_steps: tuple[int, ...] = ()
    hand_drum_steps: tuple[int, ...] = ()
    bass_steps: tuple[int, ...] = (0, 8)
    kick_hz: float = 55.0
    kick_decay_s: float = 0.18
    vocal_style: str = "sung"  # "sung": held notes with vibrato; "rap": short syllables on the grid
    vocal_hz: tuple[float, float] = (180.0, 300.0)
    brightness: float = 1.0  # harmonic roll-off exponent of the tone tables: lower is brighter
    noise_colour: float = 1.0  # spectral slope of the background noise: 0 white, 1 pink, 2 brown


MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
MINOR_PENTATONIC = (0, 3, 5, 7, 10)
HIJAZ = (0, 1, 4, 5, 7, 8, 10)
WHOLE_TONE = (0, 2, 4, 6, 8, 10)
EVERY_8TH = (0, 2, 4, 6, 8, 10, 12, 14)

# fma_small's eight top-level genres, by their title in genres.csv.
GENRE_STYLES = {
    "Hip-Hop": GenreStyle(
        instruments={"kick": 1.2, "snare": 0.8, "hat": 0.4, "bass": 1.0, "vocal": 1.0, "piano": 0.35},
        tempo_bpm=(82, 96), scale=MINOR_PENTATONIC, bass_root_midi=(33, 40),
        kick_steps=(0, 7, 10), snare_steps=(4, 12), hat_steps=EVERY_8TH, bass_steps=(0, 7, 10),
        kick_hz=45.0, kick_decay_s=0.35, vocal_style="rap", vocal_hz=(110, 170),
        brightness=1.4, noise_colour=1.0),
    "Pop": GenreStyle(
        instruments={"kick": 0.7, "snare": 0.6, "hat": 0.35, "bass": 0.6, "vocal": 1.0,
                     "piano": 0.5, "saw_lead": 0.25, "pluck": 0.3, "pad": 0.3},
        tempo_bpm=(100, 120), scale=MAJOR, bass_root_midi=(38, 45),
        kick_steps=(0, 6, 8), snare_steps=(4, 12), hat_steps=EVERY_8TH, bass_steps=(0, 4, 8, 12),
        vocal_hz=(220, 380), brightness=1.1, noise_colour=1.0),
    "Folk": GenreStyle(
        instruments={"pluck": 1.0, "vocal": 0.8, "pad": 0.25, "hand_drum": 0.25},
        tempo_bpm=(76, 100), scale=MAJOR, bass_root_midi=(40, 47),
        hand_drum_steps=(0, 8), vocal_hz=(160, 280), brightness=1.2, noise_colour=2.0),
    "Experimental": GenreStyle(
        instruments={"noise_texture": 1.0, "drone": 0.5, "bell": 0.5, "kick": 0.3, "hat": 0.3,
                     "saw_lead": 0.25, "piano": 0.2},
        tempo_bpm=(60, 140), scale=WHOLE_TONE, bass_root_midi=(36, 48),
        kick_steps=(0, 5, 11), hat_steps=(3, 7, 9, 15), kick_hz=60.0, kick_decay_s=0.12,
        brightness=0.8, noise_colour=1.5),
    "Rock": GenreStyle(
        instruments={"kick": 0.8, "snare": 1.0, "hat": 0.5, "bass": 0.6, "power_chord": 1.0,
                     "vocal": 0.3},
        tempo_bpm=(112, 148), scale=MINOR_PENTATONIC, bass_root_midi=(38, 45),
        kick_steps=(0, 8, 10), snare_steps=(4, 12), hat_steps=EVERY_8TH, bass_steps=EVERY_8TH,
        kick_hz=60.0, vocal_hz=(200, 340), brightness=0.9, noise_colour=0.5),
    "International": GenreStyle(
        instruments={"drone": 0.8, "hand_drum": 1.0, "pluck": 0.7, "bell": 0.4, "vocal": 0.4,
                     "bass": 0.3},
        tempo_bpm=(88, 116), scale=HIJAZ, bass_root_midi=(38, 45),
        hand_drum_steps=(0, 3, 6, 8, 11, 14), bass_steps=(0, 6, 8), vocal_hz=(200, 330),
        brightness=0.9, noise_colour=1.0),
    "Electronic": GenreStyle(
        instruments={"kick": 1.0, "snare": 0.3, "hat": 0.6, "bass": 0.8, "saw_lead": 1.0, "pad": 0.3},
        tempo_bpm=(120, 134), scale=MINOR, bass_root_midi=(33, 40),
        kick_steps=(0, 4, 8, 12), snare_steps=(4, 12), hat_steps=(2, 6, 10, 14),
        bass_steps=(2, 6, 10, 14), kick_hz=50.0, kick_decay_s=0.22, brightness=0.7, noise_colour=0.0),
    "Instrumental": GenreStyle(
        instruments={"piano": 1.0, "pad": 1.0, "pluck": 0.3, "bell": 0.2, "bass": 0.3},
        tempo_bpm=(60, 84), scale=MAJOR, bass_root_midi=(36, 43),
        bass_steps=(0,), brightness=1.3, noise_colour=1.5),
}


@dataclass(frozen=True)
class ArtistStyle:
    """One artist's variation on a genre: everything their tracks share."""

    genre: str
    instruments: dict[str, float]  # the genre's gains, jittered per artist
    tempo_bpm: float
    bass_root_midi: int
    vocal_hz: float
    drum_pitch: float  # multiplier on the genre's drum tunings
    brightness: float
    noise_colour: float


@dataclass(frozen=True)
class ClipJob:
    """What a worker needs to render one track's file; the track's id seeds its randomness."""

    track_id: int
    artist: ArtistStyle
    kind: str  # "audio", or one of the broken kinds: "empty", "short", "not_audio"
    clip_seconds: float
    seed: int


# --- synthesis -------------------------------------------------------------------------------


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
        out[start:start + length] += np.float32(amplitude) * envelope * wave
    return out


def _add_hit(stem: np.ndarray, hit: np.ndarray, onset: float, amplitude: float) -> None:
    """Add the sample `hit` into `stem` from `onset` s on, cut at the stem's end."""
    start = int(onset * SAMPLE_RATE)
    length = min(len(hit), len(stem) - start)
    stem[start:start + length] += np.float32(amplitude) * hit[:length]


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
    return _place_hits(song.n_samples, (sizzle * envelope).astype(np.float32),
                       _drum_onsets(song, song.style.hat_steps))


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
    notes = [(onset, held_s, _hz(song.chord(bar)[0]), 0.6) for onset, bar, _ in song.grid_onsets(song.style.bass_steps)]
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
    voice = Voice(_rolloff_table(20, song.artist.brightness), decay_s=0.7, release_s=0.1,
                  dull_table=_rolloff_table(6, 3.0), bright_s=0.08)
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
    voice = Voice(_rolloff_table(12, song.artist.brightness + 0.5), decay_s=1.0, release_s=0.15,
                  dull_table=_rolloff_table(4, 2.0), bright_s=0.3)
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
    voice = Voice(_rolloff_table(16, song.artist.brightness + 0.8), attack_s=0.3, release_s=0.4, vibrato=0.004)
    notes = []
    for onset, bar, _ in song.grid_onsets((0,)):
        notes += [(onset, 15 * song.step_s, _hz(note), 0.15) for note in song.chord(bar, octave=1)]
    return _render_notes(song.n_samples, voice, notes)


# Formant frequencies (Hz) of the vowels a, e, i, o, u.
VOWEL_FORMANTS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))


def _vowel_table(f0_hz: float, formants: tuple[int, ...]) -> np.ndarray:
    """A voiced vowel at `f0_hz`: a glottal-like harmonic source shaped by three formant peaks."""
    harmonic_hz = f0_hz * np.arange(1, int(4000 / f0_hz) + 1)
    envelope = sum(np.exp(-(((harmonic_hz - formant) / 120.0) ** 2)) * gain
                   for formant, gain in zip(formants, (1.0, 0.6, 0.3)))
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
    return stem * (0.7 + 0.3 * np.sin(2 * np.pi * swell_hz * t + song.rng.uniform(0, 2 * np.pi))).astype(np.float32)


def _bell(song: Song) -> np.ndarray:
    """Sparse struck bells: inharmonic partials, the higher ones dying first."""
    stem = np.zeros(song.n_samples, dtype=np.float32)
    t = np.arange(int(2.5 * SAMPLE_RATE)) / SAMPLE_RATE
    for onset, _, _ in song.grid_onsets((0, 8), keep=0.3):
        fundamental_hz = _hz(song.midi(int(song.rng.integers(0, 8)), octave=3))
        hit = sum(gain * np.sin(2 * np.pi * ratio * fundamental_hz * t) * np.exp(-t / decay_s)
                  for ratio, gain, decay_s in ((1.0, 1.0, 1.2), (2.76, 0.5, 0.6), (5.40, 0.3, 0.3), (8.93, 0.2, 0.15)))
        _add_hit(stem, hit.astype(np.float32), onset, 0.3)
    return stem


def _coloured_noise(rng: np.random.Generator, shape: tuple[int, ...], colour: float) -> np.ndarray:
    """Gaussian noise whose power falls as frequency**-colour, unit RMS along the last axis."""
    n_samples = shape[-1]
    freqs = np.fft.rfftfreq(n_samples, 1 / SAMPLE_RATE).astype(np.float32)
    # White Gaussian noise has independent complex Gaussian Fourier coefficients: draw those directly.
    spectrum_shape = (*shape[:-1], len(freqs))
    spectrum = (rng.standard_normal(spectrum_shape, dtype=np.float32)
                + 1j * rng.standard_normal(spectrum_shape, dtype=np.float32))
    spectrum *= np.maximum(freqs, np.float32(20.0)) ** np.float32(-colour / 2)
    noise = np.fft.irfft(spectrum, n=n_samples, axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def _noise_texture(song: Song) -> np.ndarray:
    """Bands of noise fading in and out independently, sprinkled with short high glitches."""
    n = song.n_samples
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE).astype(np.float32)
    spectrum = (song.rng.standard_normal(len(freqs), dtype=np.float32)
                + 1j * song.rng.standard_normal(len(freqs), dtype=np.float32))  # of white noise
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
    glitches = [(song.rng.uniform(0, song.seconds), song.rng.uniform(0.3, 1.0)) for _ in range(int(2 * song.seconds))]
    blip = (np.sin(2 * np.pi * song.rng.uniform(3000, 8000) * t) * envelope).astype(np.float32)
    return 0.12 * texture + _place_hits(n, blip, glitches)


INSTRUMENTS: dict[str, Callable[[Song], np.ndarray]] = {
    "kick": _kick, "snare": _snare, "hat": _hat, "hand_drum": _hand_drum, "bass": _bass,
    "saw_lead": _saw_lead, "pluck": _pluck, "power_chord": _power_chord, "piano": _piano,
    "pad": _pad, "vocal": _vocal, "drone": _drone, "bell": _bell, "noise_texture": _noise_texture,
}


def synthesize_clip(artist: ArtistStyle, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A mono float32 clip of the artist's genre, peak below 1. Mono, as some FMA tracks are:
    LAME encodes it in half the time of stereo, and encoding is most of the demo's set-up (the
    real stereo clip of the tests covers the downmix)."""
    style = GENRE_STYLES[artist.genre]
    tempo_bpm = artist.tempo_bpm * rng.uniform(0.97, 1.03)
    step_s = 60.0 / tempo_bpm / 4
    song = Song(
        rng=rng, style=style, artist=artist, n_samples=int(round(seconds * SAMPLE_RATE)), step_s=step_s,
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
    sf.write(buffer, samples, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III",
             bitrate_mode="VARIABLE", compression_level=MP3_COMPRESSION_LEVEL)
    return buffer.getvalue()


# A download error page saved under an .mp3 name: bytes no audio decoder accepts.
NOT_AUDIO_BYTES = (b"<html><head><title>503 Service Unavailable</title></head>\n"
                   b"<body><h1>Service Unavailable</h1></body></html>\n")


def render_clip(job: ClipJob) -> bytes:
    """The MP3 file of one track (or its deliberately broken stand-in)."""
    if job.kind == "empty":
        return b""
    if job.kind == "not_audio":
        return NOT_AUDIO_BYTES
    seconds = SHORT_CLIP_SECONDS if job.kind == "short" else job.clip_seconds
    rng = np.random.default_rng([job.seed, job.track_id])
    return encode_mp3(synthesize_clip(job.artist, rng, seconds))


# --- metadata --------------------------------------------------------------------------------


def read_genres() -> pd.DataFrame:
    """The real genres.csv shipped in the package, indexed by genre_id."""
    with importlib.resources.files("fma_genre").joinpath("resources/genres.csv").open("rb") as f:
        return pd.read_csv(f, index_col="genre_id")


def genres_with_ancestors(genre_ids: list[int], genres: pd.DataFrame) -> list[int]:
    """The genres plus every ancestor of each (FMA's `genres_all`), ascending."""
    found = set()
    for genre_id in genre_ids:
        while genre_id != 0 and genre_id not in found:
            found.add(genre_id)
            genre_id = int(genres.at[genre_id, "parent"])
    return sorted(found)


def split_artists(n_artists: int) -> list[str]:
    """Split of each of a genre's artists: about 80/10/10 with at least one artist per split."""
    n_held_out = max(1, round(0.1 * n_artists))
    n_training = n_artists - 2 * n_held_out
    return ["training"] * n_training + ["validation"] * n_held_out + ["test"] * n_held_out


WORDS = ("river", "static", "golden", "night", "paper", "echo", "velvet", "iron", "honey", "glass",
         "signal", "orchard", "neon", "hollow", "salt", "ember", "cloud", "silver", "wild", "low",
         "summer", "machine", "ghost", "lantern", "harbor", "copper", "blue", "quiet", "desert", "tide")
PLACES = (("Brooklyn, NY", 40.65, -73.95), ("Philadelphia, PA", 39.95, -75.17), ("Berlin", 52.52, 13.40),
          ("Montréal", 45.50, -73.57), ("Lyon, France", 45.76, 4.84), ("Austin, TX", 30.27, -97.74),
          ("Lagos", 6.52, 3.38), ("Mumbai", 19.08, 72.88), ("Glasgow", 55.86, -4.25), ("Seoul", 37.57, 126.98))
LICENSES = ("Attribution-NonCommercial-ShareAlike 3.0 International",
            "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International",
            "Attribution 4.0 International", "Attribution-ShareAlike 3.0 United States")
CATALOGUE_START = np.datetime64("2008-11-25T00:00:00")
CATALOGUE_SECONDS = 8 * 365 * 24 * 3600


def _title(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(str(word).capitalize() for word in rng.choice(WORDS, size=n_words, replace=False))


def _timestamp(seconds: float) -> str:
    return str(CATALOGUE_START + np.timedelta64(int(seconds), "s")).replace("T", " ")


def _maybe(rng: np.random.Generator, value, probability: float = 0.3):
    """`value` for some rows, missing for the rest, as sparse FMA fields are."""
    return value if rng.random() < probability else np.nan


def _artist_style(rng: np.random.Generator, genre: str) -> ArtistStyle:
    style = GENRE_STYLES[genre]
    return ArtistStyle(
        genre=genre,
        instruments={name: gain * float(rng.lognormal(0.0, 0.25)) for name, gain in style.instruments.items()},
        tempo_bpm=float(rng.uniform(*style.tempo_bpm)),
        bass_root_midi=int(rng.integers(style.bass_root_midi[0], style.bass_root_midi[1] + 1)),
        vocal_hz=float(rng.uniform(*style.vocal_hz)),
        drum_pitch=float(rng.uniform(0.85, 1.15)),
        brightness=style.brightness + float(rng.normal(0.0, 0.1)),
        noise_colour=style.noise_colour + float(rng.normal(0.0, 0.2)),
    )


def _artist_columns(rng: np.random.Generator, artist_id: int, name: str, genre: str) -> dict:
    location, latitude, longitude = PLACES[rng.integers(len(PLACES))]
    created_s = rng.uniform(0, CATALOGUE_SECONDS / 2)
    return {
        "active_year_begin": _maybe(rng, f"{rng.integers(1995, 2012)}-01-01 00:00:00", 0.4),
        "active_year_end": _maybe(rng, f"{rng.integers(2012, 2017)}-01-01 00:00:00", 0.1),
        "associated_labels": _maybe(rng, f"{_title(rng, 1)} Records", 0.2),
        "bio": f"<p>{name} make {genre.lower()} music from {location}.</p>",
        "comments": int(rng.integers(0, 5)),
        "date_created": _timestamp(created_s),
        "favorites": int(rng.integers(0, 60)),
        "id": artist_id,
        "latitude": round(latitude + float(rng.normal(0, 0.05)), 6),
        "location": location,
        "longitude": round(longitude + float(rng.normal(0, 0.05)), 6),
        "members": _maybe(rng, ", ".join(_title(rng, 1) for _ in range(3)), 0.5),
        "name": name,
        "related_projects": _maybe(rng, _title(rng, 2), 0.1),
        "tags": str([name.lower().replace(" ", "")]) if rng.random() < 0.5 else "[]",
        "website": f"http://www.{name.lower().replace(' ', '')}.com",
        "wikipedia_page": _maybe(rng, f"http://en.wikipedia.org/wiki/{name.replace(' ', '_')}", 0.05),
        "_created_s": created_s,
    }


def _album_columns(rng: np.random.Generator, album_id: int, artist: dict, n_tracks: int) -> dict:
    created_s = artist["_created_s"] + rng.uniform(0, CATALOGUE_SECONDS / 4)
    return {
        "comments": int(rng.integers(0, 3)),
        "date_created": _timestamp(created_s),
        "date_released": _timestamp(created_s + rng.uniform(0, 90 * 24 * 3600))[:10] + " 00:00:00",
        "engineer": _maybe(rng, _title(rng, 2), 0.1),
        "favorites": int(rng.integers(0, 10)),
        "id": album_id,
        "information": f"<p>{_title(rng, 3)}.</p>" if rng.random() < 0.6 else np.nan,
        "listens": int(rng.integers(500, 50000)),
        "producer": _maybe(rng, _title(rng, 2), 0.1),
        "tags": "[]",
        "title": _title(rng, 2),
        "tracks": n_tracks + int(rng.integers(0, 6)),
        "type": str(rng.choice(("Album", "Album", "Single Tracks", "Radio Program"))),
        "_created_s": created_s,
    }


def _track_columns(rng: np.random.Generator, album: dict, number: int, genre_ids: list[int],
                   genre_top: str | float, genres: pd.DataFrame, subset: str, split: str) -> dict:
    created_s = album["_created_s"] + rng.uniform(0, 3600)
    return {
        "bit_rate": int(rng.choice((128000, 192000, 256000, 320000), p=(0.1, 0.15, 0.35, 0.4))),
        "comments": int(rng.integers(0, 3)),
        "composer": _maybe(rng, _title(rng, 2), 0.05),
        "date_created": _timestamp(created_s),
        "date_recorded": _maybe(rng, _timestamp(created_s - rng.uniform(0, 365 * 24 * 3600))[:10] + " 00:00:00", 0.1),
        "duration": int(rng.integers(90, 420)),
        "favorites": int(rng.integers(0, 10)),
        "genre_top": genre_top,
        "genres": str(genre_ids),
        "genres_all": str(genres_with_ancestors(genre_ids, genres)),
        "information": _maybe(rng, f"<p>{_title(rng, 2)}</p>", 0.05),
        "interest": int(rng.integers(100, 20000)),
        "language_code": _maybe(rng, "en", 0.3),
        "license": str(rng.choice(LICENSES)),
        "listens": int(rng.integers(50, 10000)),
        "lyricist": _maybe(rng, _title(rng, 2), 0.03),
        "number": number,
        "publisher": _maybe(rng, f"{_title(rng, 1)} Publishing", 0.05),
        "tags": "[]",
        "title": _title(rng, int(rng.integers(1, 4))),
        "split": split,
        "subset": subset,
    }


def _descendants(genre_id: int, genres: pd.DataFrame) -> list[int]:
    return [int(g) for g in genres.index[(genres["top_level"] == genre_id) & (genres.index != genre_id)]]


@dataclass(frozen=True)
class Catalogue:
    """The whole synthetic dataset before rendering: its tracks.csv and its clips to render."""

    tracks: pd.DataFrame  # tracks.csv, 52 columns
    clip_jobs: list[ClipJob]  # one per small-subset track, by ascending track id


def build_catalogue(tracks_per_genre: int, seed: int, clip_seconds: float) -> Catalogue:
    """All tracks' metadata (small subset plus a few others) and the jobs that render their clips."""
    if tracks_per_genre < 3:
        raise ValueError(f"tracks_per_genre must be at least 3 (one artist per split), got {tracks_per_genre}")
    genres = read_genres()
    title_to_id = {title: int(genre_id) for genre_id, title in genres["title"].items()}
    rng = np.random.default_rng(seed)
    n_small = len(GENRE_STYLES) * tracks_per_genre
    # Ids spread over several NNN folders (feature shards), unique, in a range that grows with
    # the dataset: the demo's 192 tracks make 5 shards of about 40.
    n_listed = n_small + len(EXTRA_TRACK_GENRE_IDS)
    track_ids = rng.choice(np.arange(2, max(5000, 3 * n_listed)), size=n_listed, replace=False)
    rows: dict[int, dict] = {}
    artist_styles: dict[int, ArtistStyle] = {}
    next_artist_id, next_album_id = 1, 1

    def add_artist_tracks(genre: str, genre_ids_of_tracks: list[list[int]], genre_top: str | float,
                          subset: str, split: str) -> list[int]:
        """Rows for a new artist with one album holding these tracks; return their ids."""
        nonlocal next_artist_id, next_album_id
        name = _title(rng, 2) if rng.random() < 0.6 else f"The {_title(rng, 1)}s"
        artist = _artist_columns(rng, next_artist_id, name, genre)
        album = _album_columns(rng, next_album_id, artist, len(genre_ids_of_tracks))
        ids = []
        for number, genre_ids in enumerate(genre_ids_of_tracks, start=1):
            track_id = int(track_ids[len(rows)])
            track = _track_columns(rng, album, number, genre_ids, genre_top, genres, subset, split)
            rows[track_id] = (
                {("album", key): value for key, value in album.items()}
                | {("artist", key): value for key, value in artist.items()}
                | {("set", "split"): track.pop("split"), ("set", "subset"): track.pop("subset")}
                | {("track", key): value for key, value in track.items()}
            )
            ids.append(track_id)
        next_artist_id += 1
        next_album_id += 1
        return ids

    training_ids_by_genre = []
    for genre in GENRE_STYLES:
        genre_id = title_to_id[genre]
        subgenres = _descendants(genre_id, genres)
        n_artists = max(3, tracks_per_genre // 4)
        training = []
        for artist_index, split in enumerate(split_artists(n_artists)):
            n_tracks = tracks_per_genre // n_artists + (artist_index < tracks_per_genre % n_artists)
            style = _artist_style(rng, genre)
            if subgenres and rng.random() < 0.6:
                artist_genres = [genre_id, int(rng.choice(subgenres))]
            else:
                artist_genres = [genre_id]
            genre_ids_of_tracks = [artist_genres if rng.random() < 0.7 else [genre_id] for _ in range(n_tracks)]
            ids = add_artist_tracks(genre, genre_ids_of_tracks, genre, "small", split)
            artist_styles.update(dict.fromkeys(ids, style))
            if split == "training":
                training += ids
        training_ids_by_genre.append(training)

    for genre_ids in EXTRA_TRACK_GENRE_IDS:
        top_levels = {int(genres.at[g, "top_level"]) for g in genre_ids}
        genre_top = genres.at[top_levels.pop(), "title"] if len(top_levels) == 1 else np.nan
        subset = str(rng.choice(("medium", "large")))
        split = str(rng.choice(("training", "validation", "test"), p=(0.8, 0.1, 0.1)))
        add_artist_tracks("Pop" if pd.isna(genre_top) else str(genre_top), [genre_ids], genre_top, subset, split)

    # Broken clips, like FMA's, in the training split of three different genres.
    broken = {int(rng.choice(training)): kind
              for training, kind in zip(training_ids_by_genre, ("empty", "short", "not_audio"))}
    tracks = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    tracks = tracks[TRACKS_COLUMNS]  # drops the "_created_s" helper entries
    tracks.columns = pd.MultiIndex.from_tuples(TRACKS_COLUMNS)
    tracks.index.name = "track_id"
    clip_jobs = [ClipJob(track_id, artist_styles[track_id], broken.get(track_id, "audio"), clip_seconds, seed)
                 for track_id in sorted(artist_styles)]
    return Catalogue(tracks, clip_jobs)


# --- archives --------------------------------------------------------------------------------


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _add_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_BZIP2
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _readme(title: str, tracks_per_genre: int, seed: int, clip_seconds: float) -> bytes:
    return (
        f"{title}\n\n"
        "SYNTHETIC DEMO DATA, not the Free Music Archive: written by fma_genre.demo with\n"
        f"tracks_per_genre={tracks_per_genre}, seed={seed}, clip_seconds={clip_seconds:g}.\n"
        "Packed like the real FMA archives (https://github.com/mdeff/fma) so that the\n"
        "pipeline runs end to end offline. genres.csv is the real FMA file (CC BY 4.0).\n"
    ).encode()


def _write_zip(path: Path, members: Iterator[tuple[str, bytes]]) -> str:
    """Write the (name, data) members into a BZIP2 zip atomically; return the zip's sha1."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, data in members:
                _add_member(archive, name, data)
        sha1 = _sha1(tmp.read_bytes())
    return sha1


def _metadata_members(catalogue: Catalogue, readme: bytes) -> Iterator[tuple[str, bytes]]:
    buffer = io.StringIO()
    catalogue.tracks.to_csv(buffer)
    data_files = {
        "tracks.csv": buffer.getvalue().encode(),
        "genres.csv": importlib.resources.files("fma_genre").joinpath("resources/genres.csv").read_bytes(),
    }
    yield "fma_metadata/README.txt", readme
    # Like the real archive's, the checksums cover the data files, not the README.
    yield "fma_metadata/checksums", "".join(f"{_sha1(data)}  {name}\n" for name, data in data_files.items()).encode()
    for name, data in data_files.items():
        yield f"fma_metadata/{name}", data


def _audio_members(clip_jobs: list[ClipJob], readme: bytes, workers: int) -> Iterator[tuple[str, bytes]]:
    yield "fma_small/README.txt", readme
    checksum_lines = []
    with multiprocessing.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        # In track order whatever the workers, so the archive's bytes do not depend on them.
        clips = pool.imap(render_clip, clip_jobs) if pool else map(render_clip, clip_jobs)
        for done, (job, mp3) in enumerate(zip(clip_jobs, clips), start=1):
            name = f"{job.track_id:06d}"
            relative = f"{name[:3]}/{name}.mp3"
            checksum_lines.append(f"{_sha1(mp3)}  {relative}\n")
            yield f"fma_small/{relative}", mp3
            if done % 50 == 0 or done == len(clip_jobs):
                log.info("%d/%d clips rendered", done, len(clip_jobs))
    yield "fma_small/checksums", "".join(checksum_lines).encode()


def write_demo_archives(out_dir: str | Path, *, tracks_per_genre: int = 24, seed: int = 0,
                        clip_seconds: float = 30.0, workers: int = 1) -> dict[str, str]:
    """Write fma_metadata.zip, fma_small.zip and SHA1SUMS into `out_dir`; return {archive: sha1}.

    Deterministic: the same arguments give byte-identical files whatever `workers` is.
    """
    if clip_seconds <= SHORT_CLIP_SECONDS:
        raise ValueError(f"clip_seconds must exceed the broken short clip's {SHORT_CLIP_SECONDS} s, got {clip_seconds}")
    out_dir = Path(out_dir)
    catalogue = build_catalogue(tracks_per_genre, seed, clip_seconds)
    log.info("demo dataset: %d tracks (%d with clips of %g s), seed %d, %d workers, into %s",
             len(catalogue.tracks), len(catalogue.clip_jobs), clip_seconds, seed, workers, out_dir)
    sha1s = {
        METADATA_ARCHIVE: _write_zip(out_dir / METADATA_ARCHIVE, _metadata_members(
            catalogue, _readme("FMA metadata (synthetic demo)", tracks_per_genre, seed, clip_seconds))),
        AUDIO_ARCHIVE: _write_zip(out_dir / AUDIO_ARCHIVE, _audio_members(
            catalogue.clip_jobs, _readme("fma_small (synthetic demo)", tracks_per_genre, seed, clip_seconds), workers)),
    }
    write_text(out_dir / SHA1SUMS, "".join(f"{sha1}  {name}\n" for name, sha1 in sha1s.items()))
    return sha1s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path,
                        help="folder to write fma_metadata.zip, fma_small.zip and SHA1SUMS into")
    parser.add_argument("--tracks-per-genre", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="processes synthesising and encoding clips")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sha1s = write_demo_archives(args.out_dir, tracks_per_genre=args.tracks_per_genre, seed=args.seed,
                                clip_seconds=args.clip_seconds, workers=args.workers)
    for name, sha1 in sha1s.items():
        print(f"{sha1}  {args.out_dir / name}")


if __name__ == "__main__":
    main()
