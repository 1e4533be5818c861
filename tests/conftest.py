"""Shared fixtures: small audio written on the fly, and the real corpus when present."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serfast.calls.vad import silero_available, start_silero
from serfast.demo import synth_clip

if silero_available():
    start_silero()  # before any test imports TensorFlow, as predict does (see start_silero)

#: The real corpus beside the checkout, or where SERFAST_RAVDESS says (a copy elsewhere).
RAVDESS = Path(os.environ.get("SERFAST_RAVDESS") or
               Path(__file__).resolve().parents[2] / "shared" / "corpora" / "ravdess"
               ).resolve()


@pytest.fixture(scope="session")
def ravdess_files():
    """Every 30th real RAVDESS clip (40 files), or a skip when the corpus is absent."""
    if not RAVDESS.is_dir():
        pytest.skip(f"real corpus not present at {RAVDESS}")
    return sorted(str(p) for p in RAVDESS.rglob("*.flac"))[::30]


def speech(emotion="angry", speaker=1, take=0, sr=22050, seconds=3.5):
    """Synthetic speech-like float32 audio."""
    return synth_clip(emotion, speaker, take, sr, seconds)


def write(path, y, sr, **kw):
    """Write ``y`` to ``path`` with soundfile and return the path as str."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return str(path)


@pytest.fixture
def good_corpus(tmp_path):
    """Six valid clips in RAVDESS naming (two actors, three emotions) at 48 kHz."""
    root = tmp_path / "good"
    for actor in (1, 2):
        for code, emo in ((1, "neutral"), (5, "angry"), (4, "sad")):
            y = speech(emo, actor, 0, sr=48000)
            write(root / f"Actor_{actor:02d}" / f"03-01-{code:02d}-01-01-01-{actor:02d}.wav",
                  y, 48000, subtype="PCM_16")
    return root


def rng_signal(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A tiny real model (4 emotions) trained on the demo corpus; returns its folder."""
    from serfast.demo import make_demo_corpus
    from serfast.extract import ExtractOptions, extract
    from serfast.model.train import TrainOptions, train

    root = tmp_path_factory.mktemp("trained_model")
    make_demo_corpus(str(root / "corpus"), speakers=4, takes=2)
    store = str(root / "store.npy")
    extract(str(root / "corpus"), store, ExtractOptions(frames=True, workers=1))
    train([store], str(root / "model"),
          TrainOptions(classes="neutral,happy,sad,angry", cv=0, ensemble=1, epochs=2, seed=3))
    return str(root / "model")


@pytest.fixture
def stereo_call(tmp_path):
    """A 20-s stereo 8 kHz µ-law call: three utterances on two channels, pauses between."""
    from serfast.io.audio import resample

    y = np.zeros((20 * 8000, 2), np.float32)
    for ch, emotion, start in ((0, "angry", 1.0), (1, "sad", 6.0), (0, "happy", 11.0)):
        clip = resample(synth_clip(emotion, 5, 0, 22050, 3.5), 22050, 8000)
        y[int(start * 8000):int(start * 8000) + len(clip), ch] += clip
    return write(tmp_path / "calls" / "call.wav", y, 8000, subtype="ULAW")
