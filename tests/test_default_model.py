"""The models shipped inside the package (``default``: the all set with the speaker
encoder's columns; ``telephone``: the seed set with them; ``fast``: the seed set) load
without TensorFlow and give probabilities."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import serfast.model
from serfast.model.predictor import calibrated

DEFAULT = os.path.join(os.path.dirname(serfast.model.__file__), "default")
SHIPPED = {name: os.path.join(os.path.dirname(serfast.model.__file__), name)
           for name in ("default", "telephone", "fast")}


def _rows(spec, n: int, seed: int = 0):
    """n synthetic store rows (values, frames) of plausible scale for ``spec``."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, (n, len(spec.columns))).astype(np.float32)
    values[:, -1] = np.nan  # gender unknown: the model's gender classifier fills it
    n_cols = len(spec.frame_columns)
    frames = [rng.normal(-40, 10, (int(rng.integers(20, 120)), n_cols)).astype(np.float32)
              for _ in range(n)]
    return values, frames


@pytest.mark.parametrize("name, feature_set",
                         [("default", "all"), ("telephone", "seed"), ("fast", "seed")])
def test_shipped_models_load_and_predict_finite_probabilities(name, feature_set):
    from serfast.model.saved import SHIPPED_MODELS, load_predictor, model_folder

    assert name in SHIPPED_MODELS and model_folder(name) == SHIPPED[name]
    meta = json.load(open(os.path.join(SHIPPED[name], "model.json")))
    assert meta["labels"] == ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    predictor = load_predictor(name)
    assert predictor.spec.name == feature_set
    assert predictor.spec.embedding == (name != "fast")
    assert (predictor.spec.offset, predictor.spec.duration) == (0.0, 0.0)
    values, frames = _rows(predictor.spec, 12)
    proba = predictor.predict_proba(values, frames, groups=np.repeat([0, 1], 6))
    assert proba.shape == (12, 6)
    assert np.isfinite(proba).all() and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    one = predictor.predict_proba(values[:1], frames[:1])  # a single file of an unknown speaker
    assert one.shape == (1, 6) and np.isfinite(one).all()


@pytest.mark.parametrize("name", ["default", "telephone", "fast"])
def test_shipped_models_are_small_and_load_without_tensorflow(name):
    folder = SHIPPED[name]
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert size < 8e6
    code = ("import sys; from serfast.model.saved import load_predictor; "
            f"load_predictor({folder!r}); print('tensorflow' in sys.modules)")
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
    """The shipped model reads whole files of the all set with the speaker embedding: a
    seed store of the 0.6 + 2.5 s crop, or one without the embedding, is refused in one
    line that says how to re-extract it."""
    from dataclasses import replace

    from serfast.extract import ExtractOptions, extract
    from serfast.features.spec import STORE_SPEC
    from serfast.model.train import TrainError, evaluate

    out = str(tmp_path / "crop.npy")
    extract(str(good_corpus), out, ExtractOptions(workers=1, frames=True))
    with pytest.raises(TrainError, match="re-extract with --offset 0, --duration 0, "
                                         "--features all, --embedding$"):
        evaluate("default", [out])
    plain = str(tmp_path / "plain.npy")
    extract(str(good_corpus), plain, ExtractOptions(
        spec=replace(STORE_SPEC, embedding=False), workers=1, frames=True))
    with pytest.raises(TrainError, match="model's: re-extract with --embedding$"):
        evaluate("default", [plain])
