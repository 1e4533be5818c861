"""The embedded default corpus: synthetic speech-like clips with known emotions.

Each clip is a glottal pulse train with a moving pitch contour, shaped by three formant
resonators and a syllable envelope. Emotions differ the way acted speech does (pitch
level and range, tempo, loudness, breathiness), speakers by their pitch and formants, so
the demo exercises every stage of the pipeline and a model can learn something real.
Files are named as RAVDESS names them, so the corpus reader labels them.

The demo's folder holds a marker file (:data:`MARKER`); :func:`prepare_demo_folder`
removes only the entries the demo writes (:data:`DEMO_ENTRIES`) from a folder that has it,
and refuses a folder that holds other files without it.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import shutil

import numpy as np
import scipy.signal
import soundfile as sf

__all__ = ["DEMO_ENTRIES", "DemoError", "MARKER", "STYLES", "make_demo_call",
           "make_demo_corpus", "prepare_demo_folder", "synth_clip", "utterances_right"]

#: The file that marks a folder as the demo's.
MARKER = ".serfast-demo"
#: Names (glob patterns) of what the demo writes in its folder; nothing else is removed.
DEMO_ENTRIES = (MARKER, "corpus", "calls", "model", "plots", "features.*", "labels.*")


class DemoError(Exception):
    """A demo folder that cannot be used; one-line message."""


def prepare_demo_folder(folder: str) -> None:
    """Make ``folder`` ready for a fresh demo: create it, or empty it of what an earlier
    demo wrote (:data:`DEMO_ENTRIES`, only in a folder holding :data:`MARKER`); refuse
    (DemoError) a folder that holds anything the demo did not write."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DemoError(f"{folder} is not a folder")
    os.makedirs(folder, exist_ok=True)
    names = os.listdir(folder)
    ours = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in DEMO_ENTRIES)]
    others = sorted(set(names) - set(ours)) if MARKER in names else sorted(names)
    if others:
        raise DemoError(f"{folder} holds files the demo did not write ({others[0]}"
                        f"{', …' if len(others) > 1 else ''}); give --dir a new or empty "
                        "folder")
    for name in ours:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as fh:
        fh.write("written by serfast demo: its entries here are replaced by the next demo\n")


#: emotion -> (RAVDESS code, pitch factor, pitch range in semitones, syllables/s,
#:            loudness, breathiness)
STYLES = {
    "neutral": (1, 1.00, 2.0, 4.0, 0.30, 0.02),
    "happy": (3, 1.25, 6.0, 5.0, 0.50, 0.03),
    "sad": (4, 0.85, 1.0, 2.5, 0.18, 0.06),
    "angry": (5, 1.20, 4.0, 5.5, 0.80, 0.10),
    "fearful": (6, 1.40, 7.0, 6.0, 0.35, 0.08),
    "disgust": (7, 0.90, 3.0, 3.0, 0.40, 0.12),
}


def synth_clip(emotion: str, speaker: int, take: int, sr: int = 22050,
               seconds: float = 3.5) -> np.ndarray:
    """One clip (float32, ``seconds`` long at ``sr`` Hz) of ``emotion`` by ``speaker``."""
    _, pitch, spread, rate, loud, breath = STYLES[emotion]
    rng = np.random.default_rng([speaker, take, STYLES[emotion][0]])
    male = speaker % 2 == 1
    f0 = (110.0 if male else 210.0) * (1 + 0.04 * (speaker % 5)) * pitch
    n = int(seconds * sr)
    t = np.arange(n) / sr
    contour = spread * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 6))
    freq = f0 * 2 ** ((contour + rng.normal(0, 0.3, n).cumsum() / np.sqrt(n)) / 12)
    phase = np.cumsum(freq) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = scipy.signal.lfilter([1.0], [1.0, -0.95], pulses)
    source += breath * rng.standard_normal(n)
    scale = 1.0 if male else 1.18
    voice = np.zeros(n)
    for fc, bw in ((700 * scale, 110), (1220 * scale, 140), (2600 * scale, 200)):
        b, a = scipy.signal.iirpeak(fc * rng.uniform(0.95, 1.05), fc / bw, fs=sr)
        voice += scipy.signal.lfilter(b, a, source)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * rate * t / 2) ** 2
    envelope = np.where((t > 0.4) & (t < seconds - 0.3), syllables, 0.0)
    y = voice * envelope
    y *= loud / (np.max(np.abs(y)) + 1e-9)
    y += 0.002 * rng.standard_normal(n)
    return y.astype(np.float32)


def make_demo_corpus(folder: str, speakers: int = 6, takes: int = 4, sr: int = 22050) -> int:
    """Write ``speakers x 6 emotions x takes`` WAV clips under ``folder``; returns the count."""
    count = 0
    for s in range(1, speakers + 1):
        actor = os.path.join(folder, f"Actor_{s:02d}")
        os.makedirs(actor, exist_ok=True)
        for emotion, style in STYLES.items():
            for k in range(takes):
                name = f"03-01-{style[0]:02d}-01-{k // 2 + 1:02d}-{k % 2 + 1:02d}-{s:02d}.wav"
                sf.write(os.path.join(actor, name), synth_clip(emotion, s, k, sr), sr,
                         subtype="PCM_16")
                count += 1
    return count


def make_demo_call(path: str, seconds: float = 60.0, seed: int = 0) -> list[tuple]:
    """Write a stereo 8 kHz µ-law "call" of two unseen speakers taking turns, with pauses
    and line noise; returns its utterances as (channel, start s, end s, emotion)."""
    from .io.audio import resample

    rng = np.random.default_rng(seed)
    sr = 8000
    y = 0.003 * rng.standard_normal((int(seconds * sr), 2))
    truth, t, emotions = [], 1.0, list(STYLES)
    while t < seconds - 4.5:
        channel = len(truth) % 2
        emotion = emotions[int(rng.integers(len(emotions)))]
        clip = resample(synth_clip(emotion, 7 + channel, len(truth), 22050), 22050, sr)
        y[int(t * sr):int(t * sr) + len(clip), channel] += clip
        truth.append((channel, round(t, 2), round(t + len(clip) / sr, 2), emotion))
        t += len(clip) / sr + float(rng.uniform(0.5, 2.0))
    sf.write(path, np.clip(y, -1, 1).astype(np.float32), sr, subtype="ULAW")
    return truth


def utterances_right(labels_csv: str, truth: list[tuple]) -> int:
    """How many utterances of ``truth`` (:func:`make_demo_call`'s list) the labels CSV of
    the call got right: an utterance's label is the arg-max of the overlap-weighted mean
    probabilities of its channel's windows over it; one without windows counts as wrong."""
    from .io.csv_cells import read_cell

    with open(labels_csv, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["error"]]
    probs = [c for c in (rows[0] if rows else {}) if c.startswith("p_")]
    right = 0
    for channel, start, end, emotion in truth:
        total = np.zeros(len(probs))
        for r in rows:
            overlap = min(float(r["end"]), end) - max(float(r["start"]), start)
            if read_cell(r["channel"]) == str(channel) and overlap > 0:
                total += overlap * np.array([float(r[c]) for c in probs])
        right += bool(total.any()) and probs[int(total.argmax())] == f"p_{emotion}"
    return right
