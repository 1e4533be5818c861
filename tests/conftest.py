"""Shared fixtures: small audio written on the fly, and the real corpus when present."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serfast.demo import synth_clip

RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "ravdess"


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
