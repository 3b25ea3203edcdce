"""What makes each of fma_small's eight genres recognisable in the demo's synthetic music, and
how each artist varies it: instruments and their weights, tempo, rhythm, scale, timbre, noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        tempo_bpm=(82, 96),
        scale=MINOR_PENTATONIC,
        bass_root_midi=(33, 40),
        kick_steps=(0, 7, 10),
        snare_steps=(4, 12),
        hat_steps=EVERY_8TH,
        bass_steps=(0, 7, 10),
        kick_hz=45.0,
        kick_decay_s=0.35,
        vocal_style="rap",
        vocal_hz=(110, 170),
        brightness=1.4,
        noise_colour=1.0,
    ),
    "Pop": GenreStyle(
        instruments={
            "kick": 0.7,
            "snare": 0.6,
            "hat": 0.35,
            "bass": 0.6,
            "vocal": 1.0,
            "piano": 0.5,
            "saw_lead": 0.25,
            "pluck": 0.3,
            "pad": 0.3,
        },
        tempo_bpm=(100, 120),
        scale=MAJOR,
        bass_root_midi=(38, 45),
        kick_steps=(0, 6, 8),
        snare_steps=(4, 12),
        hat_steps=EVERY_8TH,
        bass_steps=(0, 4, 8, 12),
        vocal_hz=(220, 380),
        brightness=1.1,
        noise_colour=1.0,
    ),
    "Folk": GenreStyle(
        instruments={"pluck": 1.0, "vocal": 0.8, "pad": 0.25, "hand_drum": 0.25},
        tempo_bpm=(76, 100),
        scale=MAJOR,
        bass_root_midi=(40, 47),
        hand_drum_steps=(0, 8),
        vocal_hz=(160, 280),
        brightness=1.2,
        noise_colour=2.0,
    ),
    "Experimental": GenreStyle(
        instruments={
            "noise_texture": 1.0,
            "drone": 0.5,
            "bell": 0.5,
            "kick": 0.3,
            "hat": 0.3,
            "saw_lead": 0.25,
            "piano": 0.2,
        },
        tempo_bpm=(60, 140),
        scale=WHOLE_TONE,
        bass_root_midi=(36, 48),
        kick_steps=(0, 5, 11),
        hat_steps=(3, 7, 9, 15),
        kick_hz=60.0,
        kick_decay_s=0.12,
        brightness=0.8,
        noise_colour=1.5,
    ),
    "Rock": GenreStyle(
        instruments={"kick": 0.8, "snare": 1.0, "hat": 0.5, "bass": 0.6, "power_chord": 1.0, "vocal": 0.3},
        tempo_bpm=(112, 148),
        scale=MINOR_PENTATONIC,
        bass_root_midi=(38, 45),
        kick_steps=(0, 8, 10),
        snare_steps=(4, 12),
        hat_steps=EVERY_8TH,
        bass_steps=EVERY_8TH,
        kick_hz=60.0,
        vocal_hz=(200, 340),
        brightness=0.9,
        noise_colour=0.5,
    ),
    "International": GenreStyle(
        instruments={"drone": 0.8, "hand_drum": 1.0, "pluck": 0.7, "bell": 0.4, "vocal": 0.4, "bass": 0.3},
        tempo_bpm=(88, 116),
        scale=HIJAZ,
        bass_root_midi=(38, 45),
        hand_drum_steps=(0, 3, 6, 8, 11, 14),
        bass_steps=(0, 6, 8),
        vocal_hz=(200, 330),
        brightness=0.9,
        noise_colour=1.0,
    ),
    "Electronic": GenreStyle(
        instruments={"kick": 1.0, "snare": 0.3, "hat": 0.6, "bass": 0.8, "saw_lead": 1.0, "pad": 0.3},
        tempo_bpm=(120, 134),
        scale=MINOR,
        bass_root_midi=(33, 40),
        kick_steps=(0, 4, 8, 12),
        snare_steps=(4, 12),
        hat_steps=(2, 6, 10, 14),
        bass_steps=(2, 6, 10, 14),
        kick_hz=50.0,
        kick_decay_s=0.22,
        brightness=0.7,
        noise_colour=0.0,
    ),
    "Instrumental": GenreStyle(
        instruments={"piano": 1.0, "pad": 1.0, "pluck": 0.3, "bell": 0.2, "bass": 0.3},
        tempo_bpm=(60, 84),
        scale=MAJOR,
        bass_root_midi=(36, 43),
        bass_steps=(0,),
        brightness=1.3,
        noise_colour=1.5,
    ),
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


def artist_style(rng: np.random.Generator, genre: str) -> ArtistStyle:
    style = GENRE_STYLES[genre]
    return ArtistStyle(
        genre=genre,
        instruments={
            name: gain * float(rng.lognormal(0.0, 0.25)) for name, gain in style.instruments.items()
        },
        tempo_bpm=float(rng.uniform(*style.tempo_bpm)),
        bass_root_midi=int(rng.integers(style.bass_root_midi[0], style.bass_root_midi[1] + 1)),
        vocal_hz=float(rng.uniform(*style.vocal_hz)),
        drum_pitch=float(rng.uniform(0.85, 1.15)),
        brightness=style.brightness + float(rng.normal(0.0, 0.1)),
        noise_colour=style.noise_colour + float(rng.normal(0.0, 0.2)),
    )
