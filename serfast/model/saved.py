"""The saved-model format: writing a model DIR and loading it as a :class:`Predictor`.

A model DIR holds ``model.json`` (labels, feature spec, config, versions),
``network.keras`` (the whole network, loaded with ``safe_mode=True``), ``norm.npz``
(normalisation and gender-classifier arrays) and, for ``serfast`` networks,
``weights.npz`` (the same weights as plain arrays, for a TensorFlow-free NumPy forward
pass). No file executes code when loaded, and none names a serfast module. TensorFlow is
imported only inside functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np

from .. import __version__
from ..features.spec import FeatureSpec
from .config import FORMAT, ModelError, NetworkConfig
from .forward import keras_forward, numpy_forward
from .gender import GenderClassifier
from .networks import keras_modules
from .predictor import Predictor

__all__ = ["save_model", "read_meta", "load_predictor"]


def _flat_norm(norm: dict, gender: GenderClassifier | None) -> dict[str, np.ndarray]:
    flat = {f"{block}/{k}": v for block, m in norm.items() for k, v in m.items()}
    if gender is not None:
        flat.update({f"gender/{k}": np.asarray(v) for k, v in asdict(gender).items()})
    return flat


def save_model(model_dir: str, predictor: Predictor, network, member_weights: list[dict],
               extra: dict | None = None) -> None:
    """Write ``model_dir``: model.json, network.keras, norm.npz (+ weights.npz)."""
    os.makedirs(model_dir, exist_ok=True)
    network.save(os.path.join(model_dir, "network.keras"))
    np.savez(os.path.join(model_dir, "norm.npz"), **_flat_norm(predictor.norm, predictor.gender))
    if member_weights:
        np.savez(os.path.join(model_dir, "weights.npz"),
                 **{f"m{j}/{k}": v for j, w in enumerate(member_weights) for k, v in w.items()})
    meta = {"format": FORMAT, "serfast_version": __version__, "labels": predictor.labels,
            "spec": predictor.spec.to_dict(), "config": asdict(predictor.config),
            "gender_classifier": predictor.gender is not None, **(extra or {})}
    with open(os.path.join(model_dir, "model.json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)


def read_meta(model_dir: str) -> dict:
    """The model.json of ``model_dir``; ModelError if it is not a serfast model."""
    path = os.path.join(model_dir, "model.json")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"not a serfast model directory: {model_dir} "
                         f"({err.__class__.__name__})") from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: unsupported model format {meta.get('format')!r}")
    return meta


def load_predictor(model_dir: str, use_keras: bool = False) -> Predictor:
    """Load a saved model. Serfast networks run in NumPy (no TensorFlow import) unless
    ``use_keras``; method networks load ``network.keras`` with ``safe_mode=True``."""
    meta = read_meta(model_dir)
    config = NetworkConfig(**meta["config"])
    with np.load(os.path.join(model_dir, "norm.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    norm: dict[str, dict] = {}
    for key, v in arrays.items():
        block, name = key.split("/", 1)
        norm.setdefault(block, {})[name] = v
    gender = None
    if "gender" in norm:
        g = norm.pop("gender")
        gender = GenderClassifier(g["mean"], g["scale"], g["coef"], float(g["intercept"]))
    if config.network == "serfast" and not use_keras:
        with np.load(os.path.join(model_dir, "weights.npz"), allow_pickle=False) as z:
            weights = [{} for _ in config.members]
            for key in z.files:
                j, name = key.split("/", 1)
                weights[int(j[1:])][name] = z[key]
        forward = numpy_forward(config.members, weights)
    else:
        keras, _ = keras_modules()
        network = keras.saving.load_model(os.path.join(model_dir, "network.keras"),
                                          safe_mode=True, compile=False)
        forward = keras_forward(network)
    return Predictor(meta["labels"], FeatureSpec.from_dict(meta["spec"]), config, norm,
                     gender, forward)
