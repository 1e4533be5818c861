"""What a trained model is: the networks' inputs, normalisation, gender, the
:class:`Predictor` (a TensorFlow-free forward pass) and the saved-model format. The Keras
builders are in :mod:`serfast.model.networks`.

Two networks:

* ``serfast`` (the default): an ensemble of MLPs over per-speaker standardised utterance
  statistics of the frame-level features (plus the store's 168 values and gender) and
  small Conv1D sequence models over per-speaker normalised frames; member probabilities
  are averaged. Needs a store extracted with ``--frames`` (without frames it falls back to
  MLPs over the 168 values).
* ``method``: the SER-FusionNet method's exact network: a Conv1D (or Conv2D over the
  frame log-mel) extractor -> Dense 32 deep features, fused with the six statistical
  values and gender, classified by an MLP, LSTM or BiLSTM head; global standardisation.

A model DIR holds ``model.json`` (labels, feature spec, config, versions),
``network.keras`` (the whole network, loaded with ``safe_mode=True``), ``norm.npz``
(normalisation and gender-classifier arrays) and, for ``serfast`` networks,
``weights.npz`` (the same weights as plain arrays, for a TensorFlow-free NumPy forward
pass). No file executes code when loaded. TensorFlow is imported only inside functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .. import __version__
from ..features.spec import FeatureSpec

N_ACOUSTIC = 162  # store columns 0..161: zcr, chroma, mfcc, rms, mel means
N_VALUES = 168  # acoustic + the six statistical columns; column 168 is gender
PRIOR_ROWS = 4.0  # pseudo-rows of the training distribution added to every group
VOICED_DB = 25.0  # frames within this many dB of a clip's loudest frame are "voiced"
FORMAT = 1


class ModelError(ValueError):
    """A model DIR or input that cannot be used; one-line message."""


@dataclass
class NetworkConfig:
    """What to build and how to feed it.

    ``network``: "serfast" or "method"; ``extractor``: "conv1d" | "conv2d" (method only);
    ``classifier``: "mlp" | "lstm" | "bilstm" (method only); ``norm``: "speaker" (per-group
    standardisation) or "global"; ``ensemble``: members of each kind (serfast);
    ``frames``: whether frame-level features are used; ``n_steps``: frames per clip fed
    to sequence members (pad/crop).
    """

    network: str = "serfast"
    extractor: str = "conv1d"
    classifier: str = "mlp"
    norm: str = "speaker"
    ensemble: int = 2
    frames: bool = True
    n_steps: int = 0
    members: list[str] = field(default_factory=list)  # "stats" / "seq" per member

    @property
    def input_names(self) -> list[str]:
        """Names of the network inputs this config needs."""
        if self.network == "serfast":
            return ["stats", "seq"] if self.frames else ["stats"]
        return ["logmel", "aux"] if self.extractor == "conv2d" else ["acoustic", "aux"]


# ---------------------------------------------------------------- input features

def pooled_frame_stats(frames: list[np.ndarray], n_mels: int) -> np.ndarray:
    """Utterance statistics of frame features: (n, 5 * d + 1) float32.

    For each clip's (n_frames, d) frames: mean, std, 10th and 90th percentile over voiced
    frames (mean log-mel within :data:`VOICED_DB` of the loudest frame), mean absolute
    frame-to-frame change over all frames, and the voiced fraction.
    """
    out = []
    for f in frames:
        f = np.asarray(f, dtype=np.float32)
        if f.shape[0] == 0:
            raise ModelError("a row has no frame-level features")
        energy = f[:, :n_mels].mean(1)
        voiced = f[energy > energy.max() - VOICED_DB]
        lo, hi = _quantiles(np.sort(voiced, axis=0), (0.1, 0.9))
        delta = np.abs(np.diff(f, axis=0)).mean(0) if f.shape[0] > 1 else np.zeros(f.shape[1])
        out.append(np.concatenate([voiced.mean(0), voiced.std(0), lo, hi, delta,
                                   [voiced.shape[0] / f.shape[0]]]))
    return np.asarray(out, dtype=np.float32)


def _quantiles(ordered: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Linear-interpolated quantiles (as np.percentile) of column-sorted (m, d) data."""
    out = []
    for q in qs:
        pos = q * (len(ordered) - 1)
        k = int(pos)
        upper = ordered[min(k + 1, len(ordered) - 1)]
        out.append(ordered[k] + (pos - k) * (upper - ordered[k]))
    return out


def moments(x: np.ndarray) -> dict:
    """Training-set mean and variance of each column of ``x`` (rows, d)."""
    x = np.asarray(x, dtype=np.float64)
    return {"mean": x.mean(0), "var": x.var(0)}


def column_sums(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(rows, sum, sum of squares) of the columns of ``x``, float64: what
    :func:`standardize` needs of a group, summable over chunks of it."""
    x = np.asarray(x, dtype=np.float64)
    return float(len(x)), x.sum(0), np.einsum("ij,ij->j", x, x)


def _standardize_sums(x: np.ndarray, prior: dict, sums, prior_weight: float) -> np.ndarray:
    """Standardise ``x`` as one group whose rows have the :func:`column_sums` ``sums``."""
    mean, var = prior["mean"], prior["var"]
    n, s1, s2 = sums
    mu = (s1 + prior_weight * mean) / (n + prior_weight)
    v = (np.maximum(s2 - 2 * mu * s1 + n * mu * mu, 0.0)
         + prior_weight * (var + (mean - mu) ** 2)) / (n + prior_weight)
    return ((np.asarray(x, dtype=np.float64) - mu) / np.sqrt(v + 1e-8)).astype(np.float32)


def standardize(x: np.ndarray, prior: dict, groups: np.ndarray | None,
                weights: np.ndarray | None = None, prior_weight: float = PRIOR_ROWS,
                sums=None) -> np.ndarray:
    """Standardise the rows of ``x`` (rows, d) within each group, float32.

    Each group's mean and variance are estimated from its rows plus ``prior_weight``
    pseudo-rows of the training distribution ``prior`` (so a one-row group is standardised
    mostly by the training moments). ``groups`` None standardises by ``prior`` alone.
    ``weights`` (rows,) counts each row that many times (frames per clip for sequences).
    ``sums``: the :func:`column_sums` of the whole group, when ``x`` is only a chunk of
    it (``groups`` is then ignored: all rows are that group).
    """
    if sums is not None:
        return _standardize_sums(x, prior, sums, prior_weight)
    x = np.asarray(x, dtype=np.float64)
    mean, var = prior["mean"], prior["var"]
    if groups is None:
        return ((x - mean) / np.sqrt(var + 1e-8)).astype(np.float32)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.float32)
    _, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    for g in range(inverse.max() + 1):
        rows = inverse == g
        xg, wg = x[rows], w[rows][:, None]
        n = wg.sum()
        mu = ((xg * wg).sum(0) + prior_weight * mean) / (n + prior_weight)
        v = (((xg - mu) ** 2 * wg).sum(0) + prior_weight * (var + (mean - mu) ** 2)) \
            / (n + prior_weight)
        out[rows] = (xg - mu) / np.sqrt(v + 1e-8)
    return out


def _pad(frames: list[np.ndarray], n_steps: int) -> np.ndarray:
    """Frames cropped/zero-padded to ``n_steps``: (n, n_steps, d) float32."""
    out = np.zeros((len(frames), n_steps, frames[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(frames):
        out[i, :min(len(f), n_steps)] = f[:n_steps]
    return out


def gender_column(values: np.ndarray, gender: "GenderClassifier | None",
                  groups: np.ndarray | None, sums=None) -> np.ndarray:
    """The gender input (n,) in {-1 female, +1 male}; NaN filled by ``gender`` (0 if none).
    ``sums``: (rows, sum of male probabilities) of the missing rows of the whole group,
    when ``values`` is a chunk of it."""
    g = np.asarray(values[:, N_VALUES], dtype=np.float64)
    missing = np.isnan(g)
    if missing.any():
        if gender is None:
            fill = np.full(missing.sum(), 0.5)
        elif sums is not None and sums[0] > 0:
            fill = np.full(missing.sum(), float(sums[1] / sums[0] > 0.5))
        else:
            fill = gender.predict(values[missing], None if groups is None else groups[missing])
        g = g.copy()
        g[missing] = fill
    return (2 * g - 1).astype(np.float32)


def network_inputs(config: NetworkConfig, norm: dict, spec: FeatureSpec, values: np.ndarray,
                   frames: list[np.ndarray] | None, groups: np.ndarray | None,
                   gender: "GenderClassifier | None", sums: dict | None = None
                   ) -> dict[str, np.ndarray]:
    """The arrays the network eats, by input name (see :attr:`NetworkConfig.input_names`).

    ``norm`` holds training moments per block: ``stats``, ``frames`` (serfast) or
    ``acoustic``, ``aux``, ``logmel`` (method). Per-group standardisation when
    ``config.norm == "speaker"``.
    """
    values = np.asarray(values, dtype=np.float32)
    groups = groups if config.norm == "speaker" else None
    sums = sums if groups is not None and config.network == "serfast" else None
    sums = sums or {}
    sex = gender_column(values, gender, groups, sums.get("gender"))[:, None]
    if config.network == "serfast":
        block = stat_block(config, spec, values, frames)
        out = {"stats": np.hstack([standardize(block, norm["stats"], groups,
                                               sums=sums.get("stats")), sex])}
        if config.frames:
            lengths = np.array([len(f) for f in frames])
            flat = standardize(np.concatenate(frames), norm["frames"],
                               None if groups is None else np.repeat(groups, lengths),
                               sums=sums.get("frames"))
            parts = np.split(flat, np.cumsum(lengths)[:-1])
            out["seq"] = _pad(parts, config.n_steps)
        return out
    aux = np.hstack([standardize(values[:, N_ACOUSTIC:N_VALUES], norm["aux"], groups), sex])
    if config.extractor == "conv2d":
        mels = [np.asarray(f)[:, :spec.n_mels] for f in frames]
        lengths = np.array([len(f) for f in mels])
        flat = standardize(np.concatenate(mels), norm["logmel"],
                           None if groups is None else np.repeat(groups, lengths))
        parts = np.split(flat, np.cumsum(lengths)[:-1])
        seq = _pad(parts, config.n_steps)
        return {"logmel": seq[..., None], "aux": aux}
    acoustic = standardize(values[:, :N_ACOUSTIC], norm["acoustic"], groups)
    return {"acoustic": acoustic[..., None], "aux": aux}


def stat_block(config: NetworkConfig, spec: FeatureSpec, values: np.ndarray,
               frames: list[np.ndarray] | None) -> np.ndarray:
    """Unstandardised utterance features of the serfast MLPs: (n, d) float32."""
    block = np.asarray(values[:, :N_VALUES], dtype=np.float32)
    if config.frames:
        block = np.hstack([pooled_frame_stats(frames, spec.n_mels), block])
    return block


# ---------------------------------------------------------------- gender classifier

@dataclass
class GenderClassifier:
    """Logistic regression male-vs-female over the 168 raw values (global z-score)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, values: np.ndarray) -> np.ndarray:
        """(n,) probability that each row is male."""
        z = (np.asarray(values[:, :N_VALUES], np.float64) - self.mean) / self.scale
        return 1 / (1 + np.exp(-(z @ self.coef + self.intercept)))

    def predict(self, values: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """(n,) 1.0 male / 0.0 female; probabilities averaged over each group first."""
        p = self.probability(values)
        if groups is not None:
            _, inv = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
            p = (np.bincount(inv, p) / np.bincount(inv))[inv]
        return (p > 0.5).astype(np.float64)


def _keras_modules():
    from .networks import keras_modules

    return keras_modules()


# ---------------------------------------------------------------- NumPy forward pass

def member_arrays(member, kind: str) -> dict[str, np.ndarray]:
    """A serfast member's weights as plain arrays, keyed ``layer/i``."""
    names = ["hidden", "out"] + (["conv0", "bn0", "conv1", "bn1"] if kind == "seq" else [])
    return {f"{n}/{i}": np.asarray(w) for n in names
            for i, w in enumerate(member.get_layer(n).get_weights())}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _conv_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Conv1D with "same" padding: x (n, steps, c_in), kernel (width, c_in, c_out) ->
    (n, steps, c_out). One GEMM per tap over the flattened padded batch, then shift-add."""
    width, (n, steps, _) = kernel.shape[0], x.shape
    padded = steps + width - 1
    flat = np.pad(x, ((0, 0), (width // 2, width - 1 - width // 2), (0, 0))).reshape(n * padded, -1)
    total = n * padded - (width - 1)
    out = np.zeros((n * padded, kernel.shape[2]), dtype=np.float32)
    for j in range(width):
        out[:total] += (flat @ kernel[j])[j:j + total]
    return out.reshape(n, padded, -1)[:, :steps]


def numpy_member(kind: str, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference of one serfast member in NumPy (dropout is the identity): (n, classes)."""
    if kind == "seq":
        for k in range(2):
            kernel, bias = w[f"conv{k}/0"], w[f"conv{k}/1"]  # (5, c_in, c_out)
            x = _conv_same(x, kernel) + bias
            gamma, beta, mm, mv = (w[f"bn{k}/{i}"] for i in range(4))
            x = np.maximum((x - mm) * (gamma / np.sqrt(mv + 1e-3)) + beta, 0)
            t = x.shape[1] // 2
            x = x[:, :2 * t].reshape(len(x), t, 2, -1).max(2)
        x = np.concatenate([x.mean(1), x.max(1)], axis=1)
    h = np.maximum(x @ w["hidden/0"] + w["hidden/1"], 0)
    return _softmax(h @ w["out/0"] + w["out/1"])


# ---------------------------------------------------------------- Predictor

@dataclass
class Predictor:
    """A trained model ready to score store rows (see :meth:`predict_proba`)."""

    labels: list[str]
    spec: FeatureSpec
    config: NetworkConfig
    norm: dict
    gender: GenderClassifier | None
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]

    @property
    def needs_frames(self) -> bool:
        """True if :meth:`predict_proba` needs frame-level features."""
        return self.config.frames

    def predict_proba(self, values: np.ndarray, frames: list[np.ndarray] | None = None,
                      groups: np.ndarray | None = None, sums: dict | None = None
                      ) -> np.ndarray:
        """Class probabilities (n, len(labels)) float32.

        ``values``: (n, 169) store rows (gender may be NaN: the gender classifier fills
        it); ``frames``: per-row (n_frames_i, 148) frame features, required when
        :attr:`needs_frames`; ``groups``: (n,) ids (speaker, or file+channel) for
        per-speaker normalisation, None = all rows one group; ``sums``: from
        :meth:`group_sums`, when the rows are a chunk of one larger group.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != len(self.spec.columns):
            raise ModelError(f"values must be (n, {len(self.spec.columns)}) store rows, "
                             f"got {values.shape}")
        if len(values) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.needs_frames and (frames is None or len(frames) != len(values)):
            raise ModelError("this model needs frame-level features "
                             "(extract the store with --frames)")
        if groups is None:
            groups = np.zeros(len(values), dtype=int)
        inputs = network_inputs(self.config, self.norm, self.spec, values, frames,
                                np.asarray(groups), self.gender, sums)
        return np.asarray(self.forward(inputs), dtype=np.float32)

    @property
    def chunked_groups(self) -> bool:
        """True if one group's rows can be scored in chunks (:meth:`group_sums`)."""
        return self.config.network == "serfast" and self.config.norm == "speaker"

    def group_sums(self, values: np.ndarray, frames: list[np.ndarray] | None = None,
                   total: dict | None = None) -> dict:
        """What per-speaker normalisation needs of these rows (one group), added to
        ``total`` (the result for earlier chunks of the same group). Give the total of all
        chunks to :meth:`predict_proba` as ``sums``, and each chunk scores exactly as the
        whole group would in one call, with memory bounded by the chunk.
        Requires :attr:`chunked_groups`."""
        if not self.chunked_groups:
            raise ModelError("this model cannot score a group in chunks")
        values = np.asarray(values, dtype=np.float32)
        parts = {"stats": column_sums(stat_block(self.config, self.spec, values, frames))}
        if self.config.frames:
            parts["frames"] = column_sums(np.concatenate(frames))
        missing = np.isnan(values[:, N_VALUES])
        p = self.gender.probability(values[missing]) if self.gender is not None else []
        parts["gender"] = (float(missing.sum()), float(np.sum(p)))
        if total:
            parts = {k: tuple(a + b for a, b in zip(total[k], v)) for k, v in parts.items()}
        return parts


def keras_forward(network) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Forward pass through a Keras model in batches of 512."""
    return lambda inputs: network.predict(inputs, batch_size=512, verbose=0)


def numpy_forward(kinds: list[str], weights: list[dict]) -> Callable:
    """Forward pass of a serfast ensemble without TensorFlow: mean member probabilities."""
    def forward(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.mean([numpy_member(k, w, inputs["stats" if k == "stats" else "seq"])
                        for k, w in zip(kinds, weights)], axis=0)
    return forward


# ---------------------------------------------------------------- save / load

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
        keras, _ = _keras_modules()
        network = keras.saving.load_model(os.path.join(model_dir, "network.keras"),
                                          safe_mode=True, compile=False)
        forward = keras_forward(network)
    return Predictor(meta["labels"], FeatureSpec.from_dict(meta["spec"]), config, norm,
                     gender, forward)
