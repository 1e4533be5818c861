"""The networks' inputs: utterance statistics of frame features, per-speaker
standardisation, the gender column and the arrays each network eats."""

from __future__ import annotations

import numpy as np

from ..features.spec import FeatureSpec
from .config import ModelError, NetworkConfig
from .gender import GenderClassifier

__all__ = ["PRIOR_ROWS", "RHYTHM_COLUMNS", "VOICED_DB", "pooled_frame_stats", "rhythm_stats",
           "moments", "column_sums", "standardize", "gender_column", "network_inputs",
           "stat_block"]

PRIOR_ROWS = 4.0  # pseudo-rows of the training distribution added to every group
VOICED_DB = 25.0  # frames within this many dB of a clip's loudest frame are "voiced"
#: :func:`rhythm_stats`, per clip: voiced runs per second of the speech span, log of their
#: mean length (log s), their std (s), pauses per second, log of their mean length
#: (log s), the span's share in pauses, loudness peaks per second, its voiced share.
RHYTHM_COLUMNS = ("voiced_runs_per_s", "voiced_run_log_s", "voiced_run_std_s",
                  "pauses_per_s", "pause_log_s", "pause_share", "peaks_per_s",
                  "voiced_share")
ACTIVE_DB = 30.0  # rhythm: frames within this many dB of the loudest are speech
PEAK_DB = 20.0  # rhythm: loudness peaks count within this many dB of the loudest frame
MIN_VOICED_S, MIN_PAUSE_S, PEAK_GAP_S = 0.05, 0.1, 0.07  # rhythm: shortest run, pause, gap


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


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths (frames) of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def rhythm_stats(f0_hz: np.ndarray, rms_db: np.ndarray, hop_s: float) -> np.ndarray:
    """Speech rhythm of one clip from its frames: (len(RHYTHM_COLUMNS),) float32.

    f0_hz : (n_frames,) pYIN F0, 0 where unvoiced.  rms_db : (n_frames,) frame loudness in
    dB.  hop_s : seconds between frames. The speech span runs from the first to the last
    frame within :data:`ACTIVE_DB` of the loudest; in it, voiced runs (voiced speech
    frames, at least :data:`MIN_VOICED_S`) and pauses (frames below the speech level, at
    least :data:`MIN_PAUSE_S`) are counted per second and measured, and loudness peaks
    (maxima of the 3-frame mean within :data:`PEAK_DB` of the loudest, at least
    :data:`PEAK_GAP_S` apart) counted per second. Only rates and shares: the span's
    length, which follows the words said, is left out. Runs of none give 0 (log of one
    frame for the log lengths).
    """
    db = np.asarray(rms_db, np.float64)
    active = db > db.max() - ACTIVE_DB
    span = np.flatnonzero(active)
    a, b = span[0], span[-1] + 1
    frames, seconds = b - a, (b - a) * hop_s
    speech = active[a:b]
    voiced = _runs(speech & (np.asarray(f0_hz)[a:b] > 0))
    voiced = voiced[voiced >= np.ceil(MIN_VOICED_S / hop_s)]
    pauses = _runs(~speech)
    pauses = pauses[pauses >= np.ceil(MIN_PAUSE_S / hop_s)]
    edged = np.pad(db[a:b], 2, constant_values=db.max() - ACTIVE_DB)  # speech starts rising
    smooth = np.convolve(edged, np.ones(3) / 3, mode="valid")  # [1:-1]: the span's frames
    top = ((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:])
           & (smooth[1:-1] > db.max() - PEAK_DB))
    peaks, last = 0, -np.inf
    for k in np.flatnonzero(top):
        if k - last >= np.ceil(PEAK_GAP_S / hop_s):
            peaks, last = peaks + 1, k
    return np.array([len(voiced) / seconds,
                     np.log(hop_s * (voiced.mean() if len(voiced) else 1.0)),
                     hop_s * voiced.std() if len(voiced) else 0.0,
                     len(pauses) / seconds,
                     np.log(hop_s * (pauses.mean() if len(pauses) else 1.0)),
                     pauses.sum() / frames,
                     peaks / seconds,
                     voiced.sum() / frames], np.float32)


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


def gender_column(values: np.ndarray, spec: FeatureSpec, gender: GenderClassifier | None,
                  groups: np.ndarray | None, sums=None) -> np.ndarray:
    """The gender input (n,) in {-1 female, +1 male}; NaN filled by ``gender`` (0 if none).
    ``sums``: (rows, sum of male probabilities) of the missing rows of the whole group,
    when ``values`` is a chunk of it."""
    g = np.asarray(values[:, spec.slices["gender"].start], dtype=np.float64)
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
                   gender: GenderClassifier | None, sums: dict | None = None
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
    sex = gender_column(values, spec, gender, groups, sums.get("gender"))[:, None]
    if config.network == "serfast":
        block = stat_block(config, spec, values, frames)
        out = {"stats": np.hstack([standardize(block, norm["stats"], groups,
                                               sums=sums.get("stats")), sex])}
        if "seq" in config.members:
            lengths = np.array([len(f) for f in frames])
            flat = standardize(np.concatenate(frames), norm["frames"],
                               None if groups is None else np.repeat(groups, lengths),
                               sums=sums.get("frames"))
            parts = np.split(flat, np.cumsum(lengths)[:-1])
            out["seq"] = _pad(parts, config.n_steps)
        return out
    aux = np.hstack([standardize(values[:, spec.slices["stats"]], norm["aux"], groups), sex])
    if config.extractor == "conv2d":
        mels = [np.asarray(f)[:, :spec.n_mels] for f in frames]
        lengths = np.array([len(f) for f in mels])
        flat = standardize(np.concatenate(mels), norm["logmel"],
                           None if groups is None else np.repeat(groups, lengths))
        parts = np.split(flat, np.cumsum(lengths)[:-1])
        seq = _pad(parts, config.n_steps)
        return {"logmel": seq[..., None], "aux": aux}
    acoustic = standardize(values[:, spec.slices["acoustic"]], norm["acoustic"], groups)
    return {"acoustic": acoustic[..., None], "aux": aux}


def stat_block(config: NetworkConfig, spec: FeatureSpec, values: np.ndarray,
               frames: list[np.ndarray] | None) -> np.ndarray:
    """Unstandardised utterance features of the serfast MLPs: (n, d) float32.

    With frames: :func:`pooled_frame_stats` of every frame column (``config.stats``
    "all") or of the mean log-mel and the MFCC ("mfcc"), then the store values, then
    (``config.rhythm``) the :func:`rhythm_stats` of each clip."""
    block = np.asarray(values[:, spec.slices["values"]], dtype=np.float32)
    if not config.frames:
        return block
    if config.stats == "mfcc":
        n = spec.n_mels
        pooled = pooled_frame_stats([np.hstack([np.asarray(f[:, :n], np.float32).mean(
            1, keepdims=True), f[:, n:]]) for f in frames], 1)
    else:
        pooled = pooled_frame_stats(frames, spec.n_mels)
    if not config.rhythm:
        return np.hstack([pooled, block])
    columns = spec.frame_columns
    f0, db = columns.index("f0_hz"), columns.index("rms_db")
    hop_s = spec.hop_length / spec.sr
    rhythm = np.stack([rhythm_stats(f[:, f0], f[:, db], hop_s) for f in frames])
    return np.hstack([pooled, block, rhythm])
