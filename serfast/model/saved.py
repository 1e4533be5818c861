"""The saved-model format: writing a model DIR and loading it as a :class:`Predictor`.

A model DIR holds ``model.json`` (labels, feature spec, config, versions, the files it
lists), ``network.keras`` (the whole network, loaded with ``safe_mode=True``), ``norm.npz``
(normalisation and gender-classifier arrays), for ``serfast`` networks ``weights.npz``
(the same weights as plain arrays, for a TensorFlow-free NumPy forward pass), and
``clips.npz`` (hashes of the training clips, :mod:`serfast.model.clips`). No file executes
code when loaded, and none names a serfast module. TensorFlow is imported only inside
functions.

A model DIR appears whole or not at all: it is written into a new sibling folder, synced,
and renamed into place; an older model at that path is renamed aside first and its files
removed after. A folder that holds anything serfast did not write is never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import asdict, fields
from typing import Callable, Iterator

import numpy as np

from .. import __version__
from ..features.spec import FeatureSpec
from ..io.files import sync_folder
from .clips import CLIPS_FILE
from .config import FORMAT, ModelError, NetworkConfig
from .forward import keras_forward, numpy_forward
from .gender import GenderClassifier
from .networks import keras_modules
from .predictor import Predictor

__all__ = ["DEFAULT_MODEL", "NETWORKS", "SHIPPED_MODELS", "check_model_dir", "load_predictor", "model_folder",
           "read_meta", "save_model", "shipped_model"]

#: The name that stands for the model shipped inside the package, wherever a model folder
#: is read (``serfast evaluate default …``, ``predict`` without ``--model``). A folder of
#: that name in the working directory is ``./default``.
DEFAULT_MODEL = "default"
#: The models shipped inside the package, by the name that stands for each: ``default``
#: (the ``all`` feature set with the speaker encoder's columns: the best across corpora
#: on wide-band audio), ``telephone`` (the seed set with the encoder's columns, trained on
#: a telephone copy of every clip too: for call audio, as accurate there as the ``all``
#: set and about 2.5x faster) and ``fast`` (the seed set alone: about 4x faster on call
#: archives than ``default``, weaker on unseen corpora). README's model card has their
#: leave-one-corpus-out tables.
SHIPPED_MODELS = (DEFAULT_MODEL, "telephone", "fast")


def model_folder(model_dir: str | os.PathLike) -> str:
    """The folder a model argument names: a name of :data:`SHIPPED_MODELS` is the
    package's ``serfast/model/<name>/`` (ModelError, one line, when this installation
    lacks it); any other path is returned as it is."""
    model_dir = os.fspath(model_dir)
    if model_dir not in SHIPPED_MODELS:
        return model_dir
    folder = shipped_model(model_dir)
    if not os.path.isfile(os.path.join(folder, "model.json")):
        raise ModelError(f"this serfast installation has no {model_dir} model (serfast/model/"
                         f"{model_dir}/ is missing); pass the folder of a model you trained")
    return folder


def shipped_model(name: str = DEFAULT_MODEL) -> str:
    """Where the package keeps its shipped model ``name``: ``serfast/model/<name>/``."""
    from importlib.resources import files

    return os.fspath(files(__package__) / name)

#: The networks a model DIR may name; any other is refused before a file is opened.
NETWORKS = ("serfast", "method")
#: The kinds of serfast ensemble member a model DIR may name.
MEMBER_KINDS = ("stats", "linear", "seq")
#: What a model DIR written before ``model.json`` listed its files may hold (+ ``*.png``).
_KNOWN_FILES = {"model.json", "network.keras", "norm.npz", "weights.npz", CLIPS_FILE,
                "report.json", "report.md"}


def _flat_norm(norm: dict, gender: GenderClassifier | None) -> dict[str, np.ndarray]:
    flat = {f"{block}/{k}": v for block, m in norm.items() for k, v in m.items()}
    if gender is not None:
        flat.update({f"gender/{k}": np.asarray(v) for k, v in asdict(gender).items()})
    return flat


def _serfast_files(model_dir: str) -> list[str]:
    """The entries of the existing folder ``model_dir``, all of them serfast's; ModelError
    if it holds anything else (an empty folder holds nothing to lose)."""
    entries = sorted(os.listdir(model_dir))
    if not entries:
        return entries
    try:
        with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        ours = isinstance(meta, dict) and "format" in meta and "serfast_version" in meta
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise ModelError(f"{model_dir} exists and is not a serfast model folder; choose "
                         f"another --model folder (nothing was written)")
    listed = set(meta.get("files") or ())
    if listed:
        foreign = [e for e in entries if e not in listed]
    else:
        foreign = [e for e in entries if e not in _KNOWN_FILES and not e.endswith(".png")]
    if foreign:
        raise ModelError(f"{model_dir} holds files serfast did not write "
                         f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                         f"move them or choose another --model folder")
    return entries


def check_model_dir(model_dir: str) -> None:
    """Raise ModelError (one line) unless a model can be written at ``model_dir``: a new
    path (its parent folders are created), an empty folder, or a serfast model folder that
    holds only serfast's files, in a folder where a new sibling folder can be made."""
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ModelError(f"cannot write the model to {model_dir}: it is a file")
    if os.path.isdir(model_dir):
        _serfast_files(model_dir)
    parent = os.path.dirname(os.path.abspath(model_dir))
    ancestor = parent
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ModelError(f"cannot write the model to {model_dir}: {ancestor} is a file")
    try:
        os.makedirs(parent, exist_ok=True)
        probe = os.path.join(parent, f".{os.path.basename(model_dir)}.{secrets.token_hex(4)}")
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as err:
        raise ModelError(f"cannot write the model to {model_dir}: "
                         f"{err.strerror or err.__class__.__name__}") from None


@contextlib.contextmanager
def _new_model_dir(model_dir: str) -> Iterator[str]:
    """Yield a new sibling folder to write the model in; on a clean exit, sync it and
    rename it to ``model_dir`` (an older serfast model there is renamed aside, then its
    files removed). If the block raises, the new folder is removed and ``model_dir`` is
    left as it was."""
    check_model_dir(model_dir)
    path = os.path.abspath(model_dir)
    parent, name = os.path.dirname(path), os.path.basename(path)
    tmp = os.path.join(parent, f".{name}.{secrets.token_hex(4)}.writing")
    os.mkdir(tmp)
    try:
        yield tmp
        for entry in os.listdir(tmp):
            with open(os.path.join(tmp, entry), "rb") as fh:
                os.fsync(fh.fileno())
        sync_folder(tmp)
        old = None
        if os.path.isdir(path):
            old_files = _serfast_files(path)
            old = os.path.join(parent, f".{name}.{secrets.token_hex(4)}.old")
            os.rename(path, old)
        os.rename(tmp, path)
        sync_folder(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the folder this call made, nothing else
        raise
    if old is not None:
        with contextlib.suppress(OSError):
            for entry in old_files:
                os.remove(os.path.join(old, entry))
            os.rmdir(old)


def _savez(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def save_model(model_dir: str, predictor: Predictor, network, member_weights: list[dict],
               extra: dict | None = None, clips: dict[str, np.ndarray] | None = None,
               write_more: Callable[[str], None] | None = None) -> None:
    """Write ``model_dir`` atomically: model.json, network.keras, norm.npz (+ weights.npz
    for serfast networks, + clips.npz given the training ``clips``' hashes), plus what
    ``write_more(folder)`` writes into the new folder (the report). ModelError (one line,
    nothing written) if ``model_dir`` holds anything serfast did not write."""
    with _new_model_dir(model_dir) as folder:
        network.save(os.path.join(folder, "network.keras"))
        _savez(os.path.join(folder, "norm.npz"), _flat_norm(predictor.norm, predictor.gender))
        if member_weights:
            _savez(os.path.join(folder, "weights.npz"),
                   {f"m{j}/{k}": v for j, w in enumerate(member_weights) for k, v in w.items()})
        if clips is not None:
            _savez(os.path.join(folder, CLIPS_FILE), clips)
        if write_more is not None:
            write_more(folder)
        meta = {"format": FORMAT, "serfast_version": __version__, "labels": predictor.labels,
                "spec": predictor.spec.to_dict(), "config": asdict(predictor.config),
                "gender_classifier": predictor.gender is not None, **(extra or {}),
                "files": sorted(os.listdir(folder) + ["model.json"])}
        with open(os.path.join(folder, "model.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)


def read_meta(model_dir: str) -> dict:
    """The model.json of ``model_dir`` (or of the default model, see :func:`model_folder`);
    ModelError if it is not a serfast model."""
    model_dir = model_folder(model_dir)
    path = os.path.join(model_dir, "model.json")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as err:
        raise ModelError(f"not a serfast model directory: {model_dir} "
                         f"({err.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path}: unsupported model format "
                         f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    return meta


def _config(meta: dict, path: str) -> NetworkConfig:
    """The NetworkConfig of a model.json; ModelError unless it names a known network
    with known fields."""
    config = meta.get("config")
    known = {f.name for f in fields(NetworkConfig)}
    if not isinstance(config, dict) or set(config) - known:
        raise ModelError(f"{path}: the network configuration is not serfast's")
    config = NetworkConfig(**config)
    if config.network not in NETWORKS:
        raise ModelError(f"{path}: unknown network {config.network!r} "
                         f"(this serfast loads {' and '.join(NETWORKS)})")
    unknown = sorted(set(config.members) - set(MEMBER_KINDS))
    if unknown:
        raise ModelError(f"{path}: unknown ensemble member kind {unknown[0]!r} (this serfast "
                         f"loads {', '.join(MEMBER_KINDS)})")
    return config


def _arrays(model_dir: str, name: str) -> dict[str, np.ndarray]:
    path = os.path.join(model_dir, name)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ModelError(f"{model_dir} is an incomplete model: {name} is missing") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path} is damaged ({err.__class__.__name__})") from None


def load_predictor(model_dir: str, use_keras: bool = False) -> Predictor:
    """Load a saved model. Serfast networks run in NumPy (no TensorFlow import) unless
    ``use_keras``; method networks load ``network.keras`` with ``safe_mode=True``.
    ModelError (one line) for a missing, incomplete or damaged model DIR. ``default``
    loads the model shipped inside the package (:func:`model_folder`)."""
    model_dir = model_folder(model_dir)
    meta = read_meta(model_dir)
    json_path = os.path.join(model_dir, "model.json")
    config = _config(meta, json_path)
    try:
        labels, spec = list(meta["labels"]), FeatureSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{json_path} is damaged ({err.__class__.__name__})") from None
    norm: dict[str, dict] = {}
    for key, v in _arrays(model_dir, "norm.npz").items():
        block, name = key.split("/", 1)
        norm.setdefault(block, {})[name] = v
    gender = None
    if "gender" in norm:
        g = norm.pop("gender")
        gender = GenderClassifier(g["mean"], g["scale"], g["coef"], float(g["intercept"]))
    if config.network == "serfast" and not use_keras:
        weights = [{} for _ in config.members]
        for key, v in _arrays(model_dir, "weights.npz").items():
            j, name = key.split("/", 1)
            weights[int(j[1:])][name] = v
        forward = numpy_forward(config.members, weights)
    else:
        forward = keras_forward(_load_network(model_dir))
    return Predictor(labels, spec, config, norm, gender, forward)


def _load_network(model_dir: str):
    """``network.keras`` loaded with ``safe_mode=True`` and no custom objects: a file that
    names a layer Keras does not ship, or a Lambda, is refused (ModelError)."""
    path = os.path.join(model_dir, "network.keras")
    if not os.path.exists(path):
        raise ModelError(f"{model_dir} is an incomplete model: network.keras is missing")
    keras, _ = keras_modules()
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises TypeError, ValueError, zipfile errors...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ModelError(f"{path} cannot be loaded safely ({err.__class__.__name__}"
                         f"{': ' + first[:160] if first else ''})") from None
