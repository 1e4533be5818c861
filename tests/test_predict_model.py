"""`serfast predict` end to end with a real trained model (tiny, trained on the demo
corpus): frame-level features, per-channel speaker groups, gender filled by the model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from serfast.io.audio import resample
from serfast.demo import synth_clip
from serfast_cli.main import main


@pytest.fixture
def model_dir(trained_model):
    """The session's tiny trained model (tests/conftest.py)."""
    return trained_model


def test_predict_with_a_trained_model(model_dir, stereo_call, tmp_path):
    from serfast import load_predictor

    predictor = load_predictor(model_dir)
    assert predictor.needs_frames
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", stereo_call, "--model", model_dir, "--out", str(out),
                                       "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["channel"] for r in rows} == {"0", "1"} and len(rows) >= 3
    for r in rows:
        assert r["label"] in predictor.labels and not r["error"]
        p = np.array([float(r[f"p_{lab}"]) for lab in predictor.labels])
        assert abs(p.sum() - 1) < 1e-3


def test_chunked_group_scores_exactly_like_one_call(model_dir):
    """group_sums over chunks + predict_proba(sums=) == one call over the whole group."""
    from serfast import load_predictor
    from serfast.features import compute_batch

    predictor = load_predictor(model_dir)
    assert predictor.chunked_groups
    clips = [synth_clip(e, 7, k, 22050, 2.5) for k in range(3)
             for e in ("angry", "sad", "happy", "neutral")]
    batch = compute_batch(clips, predictor.spec, frames=True)
    rows = np.concatenate([batch.values, np.full((len(clips), 1), np.nan, np.float32)], 1)
    whole = predictor.predict_proba(rows, batch.frames, np.zeros(len(rows), np.int64))
    sums = None
    for i in range(0, len(rows), 5):
        sums = predictor.group_sums(rows[i:i + 5], batch.frames[i:i + 5], sums)
    chunks = np.concatenate([predictor.predict_proba(rows[i:i + 5], batch.frames[i:i + 5],
                                                     np.zeros(len(rows[i:i + 5]), np.int64),
                                                     sums=sums)
                             for i in range(0, len(rows), 5)])
    assert np.allclose(chunks, whole, atol=1e-5)


def test_long_channel_one_group_whatever_the_chunks(model_dir, tmp_path):
    """A channel scored in chunks of 2 windows (frames spilled to a file) labels as one
    group in one call."""
    from serfast import load_predictor
    from serfast.calls import WindowOptions, label_channel

    predictor = load_predictor(model_dir)
    y = np.zeros(int(40 * 8000), np.float32)
    for k, emotion in enumerate(("angry", "sad", "happy", "neutral", "angry", "sad")):
        clip = resample(synth_clip(emotion, 5, k, 22050, 3.0), 22050, 8000)
        y[int((1 + 6 * k) * 8000):int((1 + 6 * k) * 8000) + len(clip)] += clip
    wav = str(tmp_path / "long.wav")
    sf.write(wav, y, 8000, subtype="ULAW")
    small = label_channel(wav, 0, predictor, WindowOptions(group=2, batch=2))
    big = label_channel(wav, 0, predictor, WindowOptions(group=10_000))
    assert len(small.starts) >= 6
    assert np.allclose(small.starts, big.starts) and np.allclose(small.probs, big.probs,
                                                                 atol=1e-5)
