"""Models saved by earlier serfast versions still load and score the same.

``tests/data/model_v010`` was made by serfast 0.1.0 at commit 797c73c (flat modules, before
the sub-packages): ``serfast.train.train`` on ``make_demo_corpus(speakers=4, takes=2)``
extracted with frames, ``TrainOptions(classes="neutral,happy,sad,angry", cv=0, ensemble=1,
epochs=2, seed=3)``. ``inputs.npz`` holds four 1-s ``synth_clip`` rows (gender known for
the first only, two groups) and their frames; ``proba_numpy.npy`` is what that code's
``load_predictor(...).predict_proba`` gave. ``network.keras`` (2.4 MB) is left out: the
serfast network's default NumPy forward pass never reads it.
"""

import json
import os
import zipfile

import numpy as np

from serfast import load_predictor

DATA = os.path.join(os.path.dirname(__file__), "data", "model_v010")


def test_a_model_saved_before_the_move_scores_as_it_did():
    predictor = load_predictor(os.path.join(DATA, "model"))
    assert predictor.labels == ["neutral", "happy", "sad", "angry"]
    assert predictor.needs_frames and predictor.gender is not None
    with np.load(os.path.join(DATA, "inputs.npz"), allow_pickle=False) as z:
        values, frames, lengths, groups = z["values"], z["frames"], z["lengths"], z["groups"]
    frames = np.split(frames, np.cumsum(lengths)[:-1])
    expected = np.load(os.path.join(DATA, "proba_numpy.npy"), allow_pickle=False)
    proba = predictor.predict_proba(values, frames, groups)
    assert proba.shape == (4, 4)
    assert np.allclose(proba, expected, rtol=0, atol=1e-6)


def _module_names(node):
    """Every ``module`` value in a Keras config (nested dicts and lists)."""
    if isinstance(node, dict):
        if isinstance(node.get("module"), str):
            yield node["module"]
        for v in node.values():
            yield from _module_names(v)
    elif isinstance(node, list):
        for v in node:
            yield from _module_names(v)


def test_a_saved_model_names_no_serfast_module(trained_model):
    """Moving serfast's modules cannot break a saved model: no file in it names one."""
    with zipfile.ZipFile(os.path.join(trained_model, "network.keras")) as z:
        config = json.loads(z.read("config.json"))
    modules = set(_module_names(config))
    assert modules and all(m.split(".")[0] == "keras" for m in modules), modules
    for name in ("model.json", "norm.npz", "weights.npz"):
        with open(os.path.join(trained_model, name), "rb") as fh:
            assert b"serfast." not in fh.read()
