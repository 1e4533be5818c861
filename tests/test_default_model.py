"""The model shipped inside the package loads without TensorFlow and gives probabilities."""

import json
import os
import subprocess
import sys

import numpy as np

import serfast.model
from serfast.model.predictor import calibrated

DEFAULT = os.path.join(os.path.dirname(serfast.model.__file__), "default")


def _rows(spec, n: int, seed: int = 0):
    """n synthetic store rows (values, frames) of plausible scale for ``spec``."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, (n, len(spec.columns))).astype(np.float32)
    values[:, -1] = np.nan  # gender unknown: the model's gender classifier fills it
    n_cols = spec.n_mels + spec.n_mfcc
    frames = [rng.normal(-40, 10, (int(rng.integers(20, 120)), n_cols)).astype(np.float32)
              for _ in range(n)]
    return values, frames


def test_default_model_loads_and_predicts_finite_probabilities():
    from serfast.model.saved import load_predictor

    meta = json.load(open(os.path.join(DEFAULT, "model.json")))
    assert meta["labels"] == ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    predictor = load_predictor(DEFAULT)
    values, frames = _rows(predictor.spec, 12)
    proba = predictor.predict_proba(values, frames, groups=np.repeat([0, 1], 6))
    assert proba.shape == (12, 6)
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    one = predictor.predict_proba(values[:1], frames[:1])  # a single file of an unknown speaker
    assert one.shape == (1, 6) and np.isfinite(one).all()


def test_default_model_is_small_and_loads_without_tensorflow():
    size = sum(os.path.getsize(os.path.join(DEFAULT, f)) for f in os.listdir(DEFAULT))
    assert size < 8e6
    code = ("import sys; from serfast.model.saved import load_predictor; "
            f"load_predictor({DEFAULT!r}); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    assert out == "False"


def test_temperature_keeps_the_ranking_and_spreads_the_probabilities():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert np.allclose(calibrated(p, 1.0), p)
    hot = calibrated(p, 2.0)
    np.testing.assert_allclose(hot.sum(1), 1.0, atol=1e-6)
    assert (hot.argmax(1) == p.argmax(1)).all()
    assert (hot.max(1) < p.max(1)).all()
    expected = np.sqrt(p[0]) / np.sqrt(p[0]).sum()
    np.testing.assert_allclose(hot[0], expected, rtol=1e-5)


def test_evaluate_default_on_a_store_of_another_crop_names_the_options(good_corpus, tmp_path):
    """The shipped model reads whole files: a store of the 0.6 + 2.5 s crop is refused in
    one line that says how to re-extract it."""
    import pytest

    from serfast.extract import ExtractOptions, extract
    from serfast.model.train import TrainError, evaluate

    out = str(tmp_path / "crop.npy")
    extract(str(good_corpus), out, ExtractOptions(workers=1, frames=True))
    with pytest.raises(TrainError, match="re-extract with --offset 0, --duration 0"):
        evaluate("default", [out])
