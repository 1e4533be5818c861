"""Build a telephone test archive from RAVDESS: stereo 8 kHz µ-law calls, known labels.

Each call has two actors, one per channel (agent 0, customer 1), taking turns: every
utterance is a RAVDESS clip trimmed to its speech (+0.2 s), band-limited to 300-3,400 Hz,
resampled to 8 kHz and placed after a pause of 0.3-2 s (``--pause``); the other actor
speaks next with probability 0.8 (``--turn-change``). Each channel has its own gain
(±6 dB; the relative loudness of one speaker's utterances is kept) and its own background
noise (pink noise and 50 Hz hum, 20-35 dB under that channel's speech). Some calls put the customer
on hold: 15-30 s of synthetic hold music on the customer's channel, no speech. Files are
µ-law WAV; ``truth.csv`` lists every utterance: file, channel, start, end (seconds of its
speech in the call), label, actor, clip.

    python bench/make_call_archive.py OUT_DIR [--calls 20] [--minutes 3] [--actors 17-20]
                                      [--pause 0.3,2] [--turn-change 0.8]

Short pauses and few turn changes (``--pause 0.05,0.15 --turn-change 0.2``) make long
stretches of one voice, as in real calls, where the VAD finds long speech regions instead
of one per utterance.

The corpus is read from ../shared/corpora/ravdess (``--corpus``) and never copied.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np
import scipy.signal
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from serfast.io.audio import resample  # noqa: E402
from serfast.io.corpus import read_corpus  # noqa: E402

SR = 8000
SEED6 = ("neutral", "happy", "sad", "angry", "fearful", "disgust")
DEFAULT_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                              "shared", "corpora", "ravdess")


def actor_range(text: str) -> set[str]:
    """'17-20' or '1,3,5' -> {'17', ...} (RAVDESS actor numbers)."""
    out: set[int] = set()
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return {str(a) for a in out}


def telephone_clip(path: str) -> np.ndarray:
    """A clip trimmed to its speech (+0.2 s), 300-3,400 Hz, at 8 kHz, float32."""
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    frame = sr // 100
    n = len(y) // frame
    level = 10 * np.log10((y[:n * frame].reshape(n, frame) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - 35)
    a = max(0, (loud[0] - 20) * frame)
    b = min(len(y), (loud[-1] + 21) * frame)
    sos = scipy.signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    return resample(scipy.signal.sosfilt(sos, y[a:b]).astype(np.float32), sr, SR)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise, n samples."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    x = np.fft.irfft(spec, n)
    return x / (x.std() + 1e-12)


def hold_music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Chords changing every 0.5 s with a soft attack, peak 0.3 (8 kHz)."""
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    roots = rng.choice([220.0, 247.0, 262.0, 294.0, 330.0, 349.0, 392.0], size=len(t) // 4000 + 1)
    for i, root in enumerate(roots):
        m = (t >= i * 0.5) & (t < (i + 1) * 0.5)
        env = 1 - np.exp(-(t[m] - i * 0.5) / 0.02)
        for ratio in (1.0, 1.26, 1.5, 2.0):
            y[m] += env * np.sin(2 * np.pi * root * ratio * t[m])
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def make_call(clips_by_actor: dict, minutes: float, rng: np.random.Generator,
              hold: bool, pause: tuple[float, float] = (0.3, 2.0),
              turn_change: float = 0.8) -> tuple[np.ndarray, list[dict]]:
    """One stereo call (n, 2) float32 and its utterances; ``pause`` (seconds) bounds the
    silence after each utterance, ``turn_change`` is the chance the other actor speaks
    next."""
    n = int(minutes * 60 * SR)
    actors = rng.choice(sorted(clips_by_actor), size=2, replace=False)
    gains = 10 ** (rng.uniform(-6, 6, size=2) / 20)
    y = np.zeros((n, 2), np.float32)
    hold_at = rng.uniform(0.3, 0.6) * n / SR if hold else None
    hold_len = rng.uniform(15, 30)
    t, ch, utterances = rng.uniform(0.5, 2.0), 0, []
    while True:
        if hold_at is not None and t + 6 > hold_at and t < hold_at + hold_len:
            music = hold_music(hold_len, rng)
            a = int(hold_at * SR)
            y[a:a + len(music), 1] += music[:n - a]
            t = hold_at + hold_len + rng.uniform(0.5, 1.5)
        clip = rng.choice(clips_by_actor[actors[ch]])
        x = telephone_clip(clip.path) * gains[ch]
        a = int(t * SR)
        if a + len(x) > n - SR:
            break
        y[a:a + len(x), ch] += x
        utterances.append({"channel": ch, "start": a / SR, "end": (a + len(x)) / SR,
                           "label": clip.label, "actor": actors[ch],
                           "clip": os.path.basename(clip.path)})
        t = (a + len(x)) / SR + rng.uniform(*pause)
        ch = 1 - ch if rng.uniform() < turn_change else ch
    for c in range(2):
        mine = [u for u in utterances if u["channel"] == c] or utterances
        speech_rms = np.sqrt(np.mean([np.mean(y[int(u["start"] * SR):int(u["end"] * SR),
                                                u["channel"]] ** 2) for u in mine]))
        snr = rng.uniform(20, 35)
        hum = np.sin(2 * np.pi * 50 * np.arange(n) / SR) * 0.3
        y[:, c] += (speech_rms * 10 ** (-snr / 20) * (pink_noise(n, rng) + hum)).astype(np.float32)
    return np.clip(y, -1, 1), utterances


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--actors", default="17-20", help="RAVDESS actors, e.g. 17-20 or 1,2")
    p.add_argument("--hold", type=float, default=0.25, help="Share of calls with hold music.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pause", default="0.3,2",
                   help="Shortest and longest pause after an utterance, seconds.")
    p.add_argument("--turn-change", type=float, default=0.8,
                   help="Chance that the other actor speaks next.")
    args = p.parse_args(argv)
    pause = tuple(float(v) for v in args.pause.split(","))
    wanted = actor_range(args.actors)
    clips_by_actor: dict[str, list] = {}
    for clip in read_corpus(args.corpus):
        actor = clip.speaker.rsplit("_", 1)[-1].lstrip("0")
        if actor in wanted and clip.label in SEED6:
            clips_by_actor.setdefault(actor, []).append(clip)
    if len(clips_by_actor) < 2:
        sys.exit(f"need clips of at least two actors of {args.actors} in {args.corpus}")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.calls):
        y, utterances = make_call(clips_by_actor, args.minutes, rng, rng.uniform() < args.hold,
                                  pause, args.turn_change)
        name = f"call_{i:03d}.wav"
        sf.write(os.path.join(args.out, name), y, SR, subtype="ULAW")
        rows += [{"file": name, **u} for u in utterances]
    with open(os.path.join(args.out, "truth.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["file", "channel", "start", "end", "label", "actor", "clip"])
        w.writeheader()
        w.writerows({**r, "start": f"{r['start']:.3f}", "end": f"{r['end']:.3f}"} for r in rows)
    hours = args.calls * args.minutes / 60
    print(f"wrote {args.calls} calls ({hours:.2f} h, {len(rows)} utterances) to {args.out}")


if __name__ == "__main__":
    main()
