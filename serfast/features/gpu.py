"""GPU backend: the features of thousands of clips from one batched STFT per bucket.

The array code is written against an array module ``xp``: CuPy on a GPU (cuFFT for the
STFT, cuBLAS for the filter-bank products), NumPy standing in for it on a CPU so that the
same code runs in every test. Clips are bucketed by frame count (``n_frames``), so a
bucket is one (clips, samples) array whose clips share the frame grid: zero samples past
a clip's end are exactly the STFT's own zero padding, and only the time-domain features
need each clip's true length. Every per-clip step (piptrack, median, tuning histogram,
dB clamp, chroma normalisation, ZCR, RMS, moments) is one array operation over the
bucket, never a Python loop over clips.

The arithmetic is that of ``serfast.features.cpu_kernels`` (librosa 0.11, see
``serfast.features.cpu``), from the same filter banks, column layout (``spec``) and
constants (``librosa_constants``); only the kernels differ, and nothing here imports the
CPU backend. On a GPU, ZCR and RMS per frame are one fused Numba-CUDA kernel (no
prefix-sum arrays of the whole bucket) and the waveform moments another (one block per
clip, two passes in float64); elsewhere both are array code, the same maths.

Sets with prosody add the spectral-shape, loudness and frame-statistic columns of
``serfast.features.shape`` as array code over the bucket, from the same |X|, clamped
log-mel and frame RMS. Pitch and voice quality (pYIN with its Viterbi decoding, jitter,
shimmer, HNR) run on the host CPU, clip by clip, while the GPU computes the rest: pYIN's
Viterbi is a sequential recursion over frames, and the clip's pYIN pass costs about as
much as copying it to a GPU would. The speaker embedding (``spec.embedding``) runs on the
host CPU too, by onnxruntime, as the CPU backend runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda (0.30 and older) registers np.row_stack when it compiles its first
    # kernel; NumPy 2.5 removed that alias of vstack.  Restore the alias so that the
    # kernels compile with either.
    np.row_stack = np.vstack

from numba import cuda, float64

from . import shape
from .filterbanks import filter_banks
from .gpu_transfer import STAGING_THREADS, to_host, uploaded
from .librosa_constants import (A440, AMIN, OCTAVE_ZERO_HZ, PIPTRACK_THRESHOLD, TINY32,
                                TUNING_EDGES, VARIANCE_FLOOR, ZCR_THRESHOLD)
from .spec import BatchFeatures, FeatureSpec, n_frames, pitch_bins
from .voice_encoder import clip_embeddings

__all__ = ["DeviceBanks", "HOST_CHUNK_FRAMES", "check_kernels", "compute_batch_xp",
           "device_banks", "frame_time_fused", "frame_time_xp", "frame_time_kernel",
           "moments_fused", "moments_kernel", "moments_xp"]

#: Samples below this are negative for the zero-crossing rate (``ZCR_THRESHOLD``).
_NEGATIVE_BELOW = -ZCR_THRESHOLD
#: Device bytes per STFT frame while a bucket is processed (frames, spectrum, |X|, power).
_BYTES_PER_FRAME = 40 * 1024
#: Frames per chunk when the array module is not a GPU one.
HOST_CHUNK_FRAMES = 8192
#: CUDA block shape (clips, frames) of the fused ZCR/RMS kernel.
_BLOCK = (4, 64)
#: Threads per block of the fused moments kernel (one block per clip); a power of two.
_MOMENT_THREADS = 128


@dataclass(frozen=True)
class DeviceBanks:
    """``FilterBanks`` of one spec as ``xp`` arrays, in the layout of GEMM kernels.

    window (n_fft,) f32; freqs (n_bins,) f32; mel_t (n_bins, n_mels) f32 dense;
    chroma_t (n_tunings, n_bins, n_chroma) f32; dct64 (n_mels, n_mfcc) f64 for clip means
    and dct (same) f32 for frames; edges (n_tunings + 1,) f64 ``TUNING_EDGES``.
    """

    window: object
    freqs: object
    mel_t: object
    chroma_t: object
    dct: object
    dct64: object
    edges: object


_DEVICE_BANKS: dict[tuple[FeatureSpec, str], DeviceBanks] = {}


def device_banks(spec: FeatureSpec, xp) -> DeviceBanks:
    """The spec's filter banks copied once to the array module's device."""
    key = (spec, xp.__name__)
    if key not in _DEVICE_BANKS:
        b = filter_banks(spec)
        _DEVICE_BANKS[key] = DeviceBanks(
            window=xp.asarray(b.window), freqs=xp.asarray(b.freqs),
            mel_t=xp.asarray(np.ascontiguousarray(b.mel_dense(spec.n_bins).T)),
            chroma_t=xp.asarray(b.chroma_t), dct=xp.asarray(b.dct),
            dct64=xp.asarray(b.dct.astype(np.float64)), edges=xp.asarray(TUNING_EDGES))
    return _DEVICE_BANKS[key]


def compute_batch_xp(signals: list[np.ndarray], spec: FeatureSpec = FeatureSpec(),
                     frames: bool = False, xp=None, fused: bool | None = None,
                     max_frames: int | None = None, memory_share: float = 1.0,
                     staging_threads: int | None = None, pitch_voice=None) -> BatchFeatures:
    """The features of every clip, as ``cpu.compute_batch``, on ``xp``'s device.

    Parameters
    ----------
    signals : list of (n_i,) float32 host arrays, mono at ``spec.sr``, n_i >= 1.
    xp : array module, default CuPy.  NumPy runs the same code on the CPU.
    fused : run the Numba-CUDA ZCR/RMS kernel (default: when ``xp`` is not NumPy).
    max_frames : STFT frames per chunk (default: ``memory_share`` of an eighth of free
        GPU memory, or ``HOST_CHUNK_FRAMES``); a bucket is cut into chunks of whole clips.
    memory_share : the part of the GPU this call may use (``1 / processes`` when several
        processes share one GPU).
    staging_threads : threads that copy clips into pinned memory (default
        ``STAGING_THREADS`` when this call has the GPU to itself, else one: then every
        core has a process of its own).
    pitch_voice : the host's pitch and voice columns, as ``cpu.compute_batch`` takes it.

    Returns host arrays: ``values`` (n_clips, n_features) float32 and ``frames``.
    While one chunk is computed, a background thread stages the next ones into pinned
    host memory and copies them to the device on a stream of their own.
    """
    if xp is None:
        import cupy as xp
    fused = xp is not np if fused is None else fused
    width = spec.n_features
    lengths = np.array([len(s) for s in signals], np.int64)
    if len(signals) and lengths.min() < 1:
        raise ValueError("every clip needs at least one sample")
    banks = device_banks(spec, xp)
    budget = max_frames or max(1, int(_chunk_frames(xp) * memory_share))
    values = np.empty((len(signals), width), np.float32)
    frame_list = [None] * len(signals) if frames else None
    chunks = _buckets(lengths, spec, budget)
    if staging_threads is None:
        staging_threads = STAGING_THREADS if memory_share >= 1 else 1
    for clips, y in uploaded(chunks, signals, lengths, xp, staging_threads):
        rows, logmel, extra = _bucket_features(y, xp.asarray(lengths[clips]), spec, banks,
                                               xp, fused, frames)
        host_pitch = ((pitch_voice(list(clips)) if pitch_voice else
                       [shape.pitch_voice(signals[c], spec) for c in clips])
                      if spec.has_prosody else [])  # on the CPU while the GPU works
        values[clips] = to_host(rows, xp)
        if host_pitch:
            at = spec.slices
            values[clips, at["pitch"].start:at["voice"].stop] = [p[0] for p in host_pitch]
        if frames:
            parts = [logmel, logmel @ banks.dct] + ([extra] if extra is not None else [])
            for i, (row, block) in enumerate(zip(clips, to_host(xp.concatenate(parts, axis=2),
                                                                 xp))):
                if host_pitch:
                    block = np.concatenate([block[:, :-1], host_pitch[i][1], block[:, -1:]],
                                           axis=1)
                frame_list[row] = block
        del y, rows, logmel, extra  # free the chunk before the next one arrives
    if spec.embedding:  # onnxruntime, on the CPU
        values[:, spec.slices["embedding"]] = clip_embeddings(signals, spec.sr)
    return BatchFeatures(values, frame_list)


def _chunk_frames(xp) -> int:
    """Frames per chunk: an eighth of the device memory free now or held free by CuPy
    (two chunks wait on the device while one is computed)."""
    if xp is np:
        return HOST_CHUNK_FRAMES
    free = xp.cuda.runtime.memGetInfo()[0] + xp.get_default_memory_pool().free_bytes()
    return max(1, free // 8 // _BYTES_PER_FRAME)


def _buckets(lengths: np.ndarray, spec: FeatureSpec, max_frames: int) -> list[np.ndarray]:
    """Clip indices grouped by frame count, each group cut to at most ``max_frames``
    frames (at least one clip)."""
    counts = n_frames(lengths, spec)
    order = np.argsort(counts, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(counts[order])) + 1)
    out = []
    for g in groups:
        if g.size:
            per_chunk = max(1, max_frames // int(counts[g[0]]))
            out.extend(g[i:i + per_chunk] for i in range(0, g.size, per_chunk))
    return out


def _bucket_features(y, lengths, spec: FeatureSpec, banks: DeviceBanks, xp, fused: bool,
                     frames: bool):
    """Feature rows of one bucket, all but the pitch and voice groups (left 0).

    y : (n_clips, n_samples) float32, clip ``i`` zero past ``lengths[i]``; every clip has
    ``T = n_frames(n_samples, spec)`` frames.  Returns (n_clips, n_features) float32 and,
    when ``frames``, the clamped log-mel (n_clips, T, n_mels) float32 and, with prosody,
    the frame RMS dB (n_clips, T, 1) float32 (else None for either).
    """
    t = n_frames(y.shape[1], spec)
    mag = _stft_magnitude(y, t, spec, banks, xp)
    melpow = (mag * mag) @ banks.mel_t
    total = mag.sum(axis=2, dtype=xp.float64)
    norm = xp.where(total >= TINY32, total, 1.0)
    centroid = (mag @ banks.freqs).astype(xp.float64) / norm
    spread = (mag * (banks.freqs - centroid[..., None].astype(xp.float32)) ** 2).sum(
        axis=2, dtype=xp.float64)
    bandwidth = xp.sqrt(spread / norm)

    db = xp.float32(10.0) * xp.log10(xp.maximum(melpow, xp.float32(AMIN)))
    floor = db.max(axis=(1, 2), keepdims=True) - xp.float32(spec.top_db)
    logmel = xp.maximum(db, floor)
    mfcc = logmel.mean(axis=1, dtype=xp.float64) @ banks.dct64

    tuning = _tuning_indices(mag, spec, banks.edges, xp)
    raw = mag @ banks.chroma_t[tuning]
    peak = xp.abs(raw).max(axis=2, keepdims=True)
    chroma = (raw / xp.where(peak < TINY32, xp.float32(1.0), peak)).mean(axis=1)

    zcr, rms = (frame_time_fused if fused else frame_time_xp)(y, lengths, t, spec, xp)
    rows = xp.zeros((y.shape[0], spec.n_features), xp.float64)
    extra = None
    if spec.has_prosody:
        at = spec.slices
        values, rms_db = shape.spectral_values(shape.frame_shape(mag, spec, xp), logmel, rms,
                                               banks.dct, spec, xp)
        rows[:, at["loudness"].start:at["mfcc_delta"].stop] = values
        extra = rms_db[..., None].astype(xp.float32) if frames else None
    if not spec.has_seed:
        return rows.astype(xp.float32), (logmel if frames else None), extra
    at = spec.seed.slices
    rows[:, at["zcr"]] = zcr.sum(axis=1)[:, None] / spec.n_fft / t
    rows[:, at["chroma"]] = chroma
    rows[:, at["mfcc"]] = mfcc
    rows[:, at["rms"]] = rms.mean(axis=1)[:, None]
    rows[:, at["mel"]] = melpow.mean(axis=1, dtype=xp.float64)
    rows[:, at["moments"]] = (moments_fused if fused else moments_xp)(y, lengths, xp)
    rows[:, at["centroid"]] = centroid.mean(axis=1)[:, None]
    rows[:, at["bandwidth"]] = bandwidth.mean(axis=1)[:, None]
    return rows.astype(xp.float32), (logmel if frames else None), extra


def _stft_magnitude(y, t: int, spec: FeatureSpec, banks: DeviceBanks, xp):
    """|STFT| (n_clips, t, n_bins) float32 of centred, zero-padded Hann frames."""
    half = spec.n_fft // 2
    padded = xp.pad(y, ((0, 0), (half, half)))
    step = padded.strides[1]
    frames = xp.lib.stride_tricks.as_strided(  # a view: frame j starts at sample j * hop
        padded, (y.shape[0], t, spec.n_fft), (padded.strides[0], spec.hop_length * step, step))
    return xp.abs(xp.fft.rfft(frames * banks.window, axis=2))


def _tuning_indices(mag, spec: FeatureSpec, edges, xp):
    """``estimate_tuning`` per clip: (n_clips,) int64 index into ``TUNING_EDGES``.

    piptrack candidates (local peaks above ``PIPTRACK_THRESHOLD`` * frame max, parabolic
    shift) of every
    frame, found once by ``nonzero`` and gathered by index (boolean masks would each wait
    for the GPU); those with at least the clip's median candidate magnitude vote in a
    histogram of pitch residuals; the mode wins, the middle bin (tuning 0.0) when none
    vote.
    """
    n_clips = mag.shape[0]
    n_hist = edges.shape[0] - 1
    lo, hi = pitch_bins(spec)
    if hi <= lo:
        return xp.full(n_clips, n_hist // 2, xp.int64)
    ref = xp.float32(PIPTRACK_THRESHOLD) * mag.max(axis=2, keepdims=True)
    zero = xp.float32(0.0)
    m_prev, m0, m_next = mag[..., lo - 1:hi - 1], mag[..., lo:hi], mag[..., lo + 1:hi + 1]
    x0 = xp.where(m0 > ref, m0, zero)
    is_peak = ((x0 > xp.where(m_prev > ref, m_prev, zero))
               & (x0 >= xp.where(m_next > ref, m_next, zero)))
    clip, frame, k = xp.nonzero(is_peak)  # candidates in clip order
    if clip.size == 0:
        return xp.full(n_clips, n_hist // 2, xp.int64)
    at = (clip * mag.shape[1] + frame) * mag.shape[2] + (k + lo)  # gathers: no sync
    spectrum = mag.reshape(-1)
    m_prev, m0, m_next = spectrum[at - 1], spectrum[at], spectrum[at + 1]
    a = m_next + m_prev - xp.float32(2.0) * m0
    b = (m_next - m_prev) / xp.float32(2.0)
    shift = xp.where(xp.abs(b) >= xp.abs(a), zero, -b / xp.where(a == 0, xp.float32(1), a))
    strength = m0 + xp.float32(0.5) * b * shift
    pitch = ((k + lo + shift.astype(xp.float64)) * (spec.sr / spec.n_fft)).astype(xp.float32)

    # every candidate gets a bin; those that do not vote weigh 0 (no compaction, no sync)
    votes = (strength >= _clip_medians(strength, clip, n_clips, xp)[clip]) & (pitch > 0)
    f = xp.where(votes, pitch, xp.float32(A440))  # any positive pitch: it weighs 0
    octaves = xp.log2(f / xp.float32(OCTAVE_ZERO_HZ))
    r = (xp.float32(spec.n_chroma) * octaves) % xp.float32(1.0)  # bins_per_octave=n_chroma
    r = xp.where(r >= xp.float32(0.5), r - xp.float32(1.0), r)
    j = xp.clip(xp.searchsorted(edges, r.astype(xp.float64), side="right") - 1, 0, n_hist - 1)
    hist = xp.bincount(clip * n_hist + j, weights=votes.astype(xp.float64),
                       minlength=n_clips * n_hist).reshape(n_clips, n_hist)
    return xp.where(hist.sum(axis=1) > 0, hist.argmax(axis=1), n_hist // 2)


def _clip_medians(values, clip, n_clips: int, xp):
    """Median of each clip's ``values`` (n,) float32 > 0, given ``clip`` (n,) int64
    ascending: (n_clips,) float32, inf for a clip without values.  One sort of the
    candidates keyed by (clip, value bits): positive floats order as their bit patterns.
    """
    key = (clip.astype(xp.int64) << 32) | values.view(xp.int32).astype(xp.int64)
    ranked = values[xp.argsort(key)]
    count = xp.bincount(clip, minlength=n_clips)
    first = xp.cumsum(count) - count
    lower, upper = (ranked[xp.clip(first + m, 0, values.size - 1)]
                    for m in ((count - 1) // 2, count // 2))
    return xp.where(count > 0, (lower + upper) / xp.float32(2.0), xp.float32(xp.inf))


def _frame_bounds(lengths, t: int, spec: FeatureSpec, xp):
    """Per (clip, frame) sample ranges, (n_clips, t) int64 each: crossings are counted at
    samples [z_lo, z_hi] (edge padding adds none) and energy summed over [e_lo, e_hi)."""
    start = xp.arange(t)[None, :] * spec.hop_length - spec.n_fft // 2
    n = lengths[:, None]
    z_lo = xp.broadcast_to(xp.maximum(start + 1, 1), (n.shape[0], t))
    z_hi = xp.minimum(start + spec.n_fft - 1, n - 1)
    e_lo = xp.minimum(xp.maximum(start, 0), n)
    e_hi = xp.minimum(xp.maximum(start + spec.n_fft, 0), n)
    return z_lo, z_hi, e_lo, e_hi


def frame_time_xp(y, lengths, t: int, spec: FeatureSpec, xp):
    """Zero crossings (count) and RMS of every frame, (n_clips, t) float64 each, from
    prefix sums of crossings and energy over the bucket (the bounds never reach past a
    clip's end, so its zero padding is never counted)."""
    z_lo, z_hi, e_lo, e_hi = _frame_bounds(lengths, t, spec, xp)
    neg = y < _NEGATIVE_BELOW
    crossing = xp.zeros(y.shape, xp.int32)
    crossing[:, 1:] = neg[:, 1:] != neg[:, :-1]
    crossings = _prefix(crossing, xp)
    energy = _prefix(y.astype(xp.float64) ** 2, xp)
    take = xp.take_along_axis
    zcr = xp.where(z_hi >= z_lo, take(crossings, z_hi + 1, axis=1)
                   - take(crossings, z_lo, axis=1), 0)
    frame_energy = take(energy, e_hi, axis=1) - take(energy, e_lo, axis=1)
    rms = xp.sqrt(xp.maximum(frame_energy, 0.0) / spec.n_fft)
    return zcr.astype(xp.float64), rms


def _prefix(x, xp):
    """Cumulative sums along axis 1 with a leading zero column: (n, m + 1)."""
    out = xp.zeros((x.shape[0], x.shape[1] + 1), x.dtype)
    xp.cumsum(x, axis=1, out=out[:, 1:])
    return out


def frame_time_fused(y, lengths, t: int, spec: FeatureSpec, xp):
    """As :func:`frame_time_xp`, by the Numba-CUDA kernel: one thread per (clip, frame)."""
    zcr = xp.empty((y.shape[0], t), xp.float64)
    rms = xp.empty((y.shape[0], t), xp.float64)
    grid = (-(-y.shape[0] // _BLOCK[0]), -(-t // _BLOCK[1]))
    frame_time_kernel[grid, _BLOCK](y, lengths, spec.n_fft, spec.hop_length, zcr, rms)
    return zcr, rms


@cuda.jit
def frame_time_kernel(y, lengths, n_fft, hop, zcr, rms):
    """Zero crossings and RMS of every frame; thread (i, j) writes frame j of clip i.

    y (n_clips, n) float32, clip i zero past lengths[i] (int64); zcr, rms (n_clips, t)
    float64 out.  Under ``NUMBA_ENABLE_CUDASIM=1`` (set before ``numba.cuda`` is first
    imported) it runs on Numba's simulator.
    """
    c, f = cuda.grid(2)
    if c >= zcr.shape[0] or f >= zcr.shape[1]:
        return
    n = lengths[c]
    start = f * hop - n_fft // 2
    count = 0
    for k in range(max(start + 1, 1), min(start + n_fft - 1, n - 1) + 1):
        if (y[c, k] < _NEGATIVE_BELOW) != (y[c, k - 1] < _NEGATIVE_BELOW):
            count += 1
    energy = 0.0
    for k in range(max(start, 0), min(start + n_fft, n)):
        v = float(y[c, k])
        energy += v * v
    zcr[c, f] = count
    rms[c, f] = math.sqrt(energy / n_fft)


def check_kernels(xp) -> None:
    """Compile and run the CUDA kernels once on a tiny input (raises if they cannot)."""
    y = xp.zeros((1, 4), xp.float32)
    n = xp.asarray(np.array([4]))
    frame_time_fused(y, n, 1, FeatureSpec(n_fft=4, hop_length=2), xp)
    moments_fused(y, n, xp)


def moments_xp(y, lengths, xp):
    """Mean, variance, skew and Fisher kurtosis of each clip: (n_clips, 4) float64, see
    :func:`_standardised`; two passes of array code over the bucket."""
    n = lengths.astype(xp.float64)
    mean = y.sum(axis=1, dtype=xp.float64) / n
    inside = xp.arange(y.shape[1])[None, :] < lengths[:, None]
    d = xp.where(inside, y - mean[:, None], 0.0)
    d2 = d * d
    sums = xp.stack([mean] + [(d2 * p).sum(axis=1) / n for p in (1.0, d, d2)], axis=1)
    return _standardised(sums, xp)


def moments_fused(y, lengths, xp):
    """As :func:`moments_xp`, by the Numba-CUDA kernel: one block of threads per clip."""
    sums = xp.empty((y.shape[0], 4), xp.float64)
    if y.shape[0]:
        moments_kernel[y.shape[0], _MOMENT_THREADS](y, lengths, sums)
    return _standardised(sums, xp)


def _standardised(sums, xp):
    """(mean, m2, m3, m4) per clip to mean, variance, skew and Fisher kurtosis, biased as
    scipy.stats; skew and kurtosis are 0 for a constant clip."""
    mean, m2, m3, m4 = sums.T
    spread = m2 > VARIANCE_FLOOR
    safe = xp.where(spread, m2, 1.0)
    skew = xp.where(spread, m3 / safe ** 1.5, 0.0)
    kurt = xp.where(spread, m4 / (safe * safe) - 3.0, 0.0)
    return xp.stack([mean, m2, skew, kurt], axis=1)


@cuda.jit
def moments_kernel(y, lengths, sums):
    """Mean and central moments 2-4 of clip ``blockIdx.x``, in float64.

    y (n_clips, n) float32, lengths (n_clips,) int64; sums (n_clips, 4) float64 out:
    mean, m2, m3, m4.  Each thread sums a stride of the clip; the block adds the partial
    sums in shared memory, for the mean and then for the central moments.
    """
    c = cuda.blockIdx.x
    i = cuda.threadIdx.x
    n = lengths[c]
    part = cuda.shared.array((_MOMENT_THREADS, 4), float64)
    total = 0.0
    for k in range(i, n, _MOMENT_THREADS):
        total += float(y[c, k])
    part[i, 0] = total
    _block_sum(part, i, 0, 1)
    mean = part[0, 0] / n
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for k in range(i, n, _MOMENT_THREADS):
        d = float(y[c, k]) - mean
        d2 = d * d
        s2 += d2
        s3 += d2 * d
        s4 += d2 * d2
    part[i, 1] = s2
    part[i, 2] = s3
    part[i, 3] = s4
    _block_sum(part, i, 1, 4)
    if i == 0:
        sums[c, 0] = mean
        sums[c, 1] = part[0, 1] / n
        sums[c, 2] = part[0, 2] / n
        sums[c, 3] = part[0, 3] / n


@cuda.jit(device=True)
def _block_sum(part, i, first, last):
    """Add columns ``first..last-1`` of ``part`` (one row per thread) into row 0; every
    thread of the block calls it, and all of them may read row 0 afterwards."""
    step = _MOMENT_THREADS // 2
    while step > 0:
        cuda.syncthreads()
        if i < step:
            for j in range(first, last):
                part[i, j] += part[i + step, j]
        step //= 2
    cuda.syncthreads()
