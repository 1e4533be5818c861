"""The seed row of a long file in bounded memory: the file is streamed three times.

``compute_batch`` holds every STFT frame of a clip (about 7 KB a frame: over 1 GB per hour
of audio). For a whole file (``spec.duration == 0``) longer than :data:`LONG_SECONDS`,
:func:`stream_features` computes the same row from a stream: the file is decoded and
resampled block by block (soxr's streaming resampler gives the samples of the one-shot
resampling bit for bit), and the centred STFT frames are cut across block edges exactly
as on the whole signal, in the same chunks of ``cpu.CHUNK_FRAMES`` frames, so every frame
is the one ``compute_batch`` computes. Three passes, because two statistics of the row
depend on all frames before any frame can be reduced:

1. frame sums (mel power, centroid, bandwidth, ZCR, RMS), the sample sum, the global dB
   max (MFCC's ``top_db`` floor) and a count of the piptrack candidates by the high 16
   bits of their magnitude and their tuning bin;
2. the clamped dB sums (MFCC), the central moments of the samples, and a count of the
   candidates in the one or two high-bit bins that hold the median magnitude by their low
   16 bits: this gives the median exactly, hence ``estimate_tuning``'s histogram exactly;
3. chroma with that tuning.

The frame-level columns (clamped log-mel dB, MFCC) are handed out chunk by chunk in pass
2, once the dB floor is known, for the caller to write where it likes.

Memory: a few chunk buffers (~30 MB) and the candidate counts (at most ~80 MB, usually a
few MB), whatever the length. Only the seed columns (and the speaker embedding of the
centre 1.6 s, gathered in pass 1) are streamed: pYIN and the prosody statistics need the
whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import scipy.fft

from . import cpu_kernels, long_kernels
from .cpu import CHUNK_FRAMES
from .filterbanks import filter_banks
from .librosa_constants import AMIN, TUNING_EDGES, VARIANCE_FLOOR
from .spec import FeatureSpec, n_frames, pitch_bins
from .voice_encoder import centre_span, piece_embeddings
from ..io.audio import AudioError, audio_info, channel_blocks

__all__ = ["LONG_SECONDS", "PROSODY_MAX_SECONDS", "REFUSE", "STREAM", "long_route",
           "stream_features"]

#: Whole files (``duration == 0``) longer than this, in seconds after ``offset``, are
#: streamed.
LONG_SECONDS = 60.0
#: The longest whole file (seconds after ``offset``) whose prosody features are computed:
#: pYIN and the voice measures hold the whole clip (bench/RESULTS.md has the memory).
PROSODY_MAX_SECONDS = 600.0
#: Candidates a file may have: the low-bit counts are int32.
_MAX_CANDIDATES = 2 ** 31 - 1


def _samples(path: str, spec: FeatureSpec) -> tuple[int, int]:
    """(first input frame, samples at ``spec.sr``) of ``path``'s crop, as ``load_clip``
    reads and resamples it."""
    sr, frames, _ = audio_info(path)
    start = int(spec.offset * sr)
    n_in = frames - start
    if n_in <= 0:
        raise AudioError(f"no audio after offset {spec.offset:g} s "
                         f"(file is {frames / sr:.3f} s long)")
    n = n_in if sr == spec.sr else int(np.ceil(n_in * float(spec.sr) / sr))
    return start, n


#: How :func:`long_route` says a whole file is computed.
STREAM, REFUSE = "stream", "refuse"


def long_route(path: str, spec: FeatureSpec) -> str:
    """How ``path``'s rows are computed, by its header (read only for a whole-file spec,
    ``duration == 0``): :data:`STREAM` for the seed set over :data:`LONG_SECONDS`
    (:func:`stream_features`), :data:`REFUSE` for a set with prosody over
    :data:`PROSODY_MAX_SECONDS` (it would hold the file whole), else "" (whole, in
    memory; also when the header cannot be read, so the decode reports it)."""
    if spec.duration:
        return ""
    limit, route = ((PROSODY_MAX_SECONDS, REFUSE) if spec.has_prosody
                    else (LONG_SECONDS, STREAM))
    try:
        return route if _samples(path, spec)[1] > limit * spec.sr else ""
    except AudioError:
        return ""


@dataclass
class _Chunk:
    """A chunk of frames: ``view`` holds the samples they need, frame ``first_rel``
    of ``view`` is the chunk's first; ``new`` are the samples first seen with it."""

    view: np.ndarray
    first_rel: int
    count: int
    new: np.ndarray


def _chunks(path: str, spec: FeatureSpec, start: int, n: int) -> Iterator[_Chunk]:
    """The clip's STFT frames in chunks of ``CHUNK_FRAMES``, from one decode of the file;
    every one of its ``n`` samples is in exactly one chunk's ``new``."""
    hop, n_fft, half = spec.hop_length, spec.n_fft, spec.n_fft // 2
    total = n_frames(n, spec)
    blocks = channel_blocks(path, None, spec.sr, start=start)
    buf, base, have = np.empty(0, np.float32), 0, 0
    try:
        for f0 in range(0, total, CHUNK_FRAMES):
            f1 = min(f0 + CHUNK_FRAMES, total)
            need = min(n, (f1 - 1) * hop - half + n_fft)
            new = []
            while have < need:
                y = next(blocks, None)
                if y is None:  # fewer samples than the header said: zeros, as load_clip
                    y = np.zeros(need - have, np.float32)
                y = y[:n - have]
                new.append(y)
                have += len(y)
            fresh = np.concatenate(new) if new else np.empty(0, np.float32)
            buf = np.concatenate([buf, fresh])
            yield _Chunk(buf, f0 - base // hop, f1 - f0, fresh)
            keep = max(0, (f1 * hop - half) // hop * hop)
            buf, base = buf[keep - base:], keep
    finally:
        blocks.close()


class _Frames:
    """Per-chunk buffers and the spectral kernels of ``cpu.clip_features``."""

    def __init__(self, spec: FeatureSpec):
        self.spec, self.banks = spec, filter_banks(spec)
        self.k_lo, self.k_hi = pitch_bins(spec)
        self.frames = np.empty((CHUNK_FRAMES, spec.n_fft), np.float32)
        self.mag = np.empty((CHUNK_FRAMES, spec.n_bins), np.float32)
        self.melpow = np.empty((CHUNK_FRAMES, spec.n_mels), np.float32)
        self.stats = np.empty((CHUNK_FRAMES, 2), np.float64)
        self.pitches = np.empty(CHUNK_FRAMES * ((self.k_hi - self.k_lo) // 2 + 1), np.float32)
        self.pitch_mags = np.empty_like(self.pitches)

    def compute(self, c: _Chunk) -> int:
        """Fill mag, melpow, stats for the chunk's frames; returns its candidate count."""
        b, s, k = self.banks, self.spec, c.count
        cpu_kernels.frame_clip(c.view, c.first_rel, b.window, s.hop_length, self.frames[:k])
        spectra = scipy.fft.rfft(self.frames[:k], axis=1, workers=1)
        return cpu_kernels.spectrum_frames(
            spectra, b.freqs, b.mel_start, b.mel_stop, b.mel_offset, b.mel_weights,
            self.k_lo, self.k_hi, s.sr / s.n_fft, self.mag[:k], self.melpow[:k],
            self.stats[:k], self.pitches, self.pitch_mags, 0)

    def db(self, k: int) -> np.ndarray:
        """(k, n_mels) float32 dB of the chunk's mel power, as ``clip_features``."""
        db = np.maximum(self.melpow[:k], np.float32(AMIN))
        np.log10(db, out=db)
        db *= np.float32(10.0)
        return db


def _tuning(high: np.ndarray, low: np.ndarray, highs: np.ndarray, total: int) -> int:
    """``_tuning_index`` from the counts of passes 1 and 2: index into ``TUNING_EDGES``."""
    n_bins = len(TUNING_EDGES) - 1
    if total == 0:
        return n_bins // 2
    ranks = sorted({(total - 1) // 2, total // 2})  # np.median's one or two middle values
    cum = np.cumsum(high.sum(axis=1))
    middle = []
    for r in ranks:
        h = int(np.searchsorted(cum, r, side="right"))
        within = r - (cum[h - 1] if h else 0)
        k = int(np.flatnonzero(highs == h)[0])
        lo = int(np.searchsorted(np.cumsum(low[k].sum(axis=1)), within, side="right"))
        middle.append(np.uint32((h << long_kernels.LOW_BITS) | lo))
    threshold = long_kernels.median_of(np.array(middle, np.uint32).view(np.float32))
    hist = high[highs.max() + 1:, :n_bins].sum(axis=0)
    n_low = 1 << long_kernels.LOW_BITS
    for k, h in enumerate(highs):
        values = ((int(h) << long_kernels.LOW_BITS) + np.arange(n_low, dtype=np.uint32)
                  ).astype(np.uint32).view(np.float32)
        hist = hist + low[k][values >= threshold, :n_bins].sum(axis=0)
    return int(np.argmax(hist)) if hist.sum() else n_bins // 2


def stream_features(path: str, spec: FeatureSpec,
                    on_frames: Callable[[np.ndarray], None] | None = None
                    ) -> tuple[np.ndarray, int]:
    """The row of ``path`` (``spec.n_features,`` float32, as ``compute_batch`` on
    ``load_clip(path, spec)``) and its length in samples at ``spec.sr``, in bounded memory.

    ``spec`` is a whole-file seed spec. ``on_frames``, when given, receives the clip's
    frame-level columns in order, one chunk at a time: (k, len(spec.frame_columns))
    float32, the rows ``compute_batch(..., frames=True)`` returns. Raises
    :class:`AudioError` (one line) when the file cannot be decoded or holds NaN/inf
    samples.
    """
    if spec.name != "seed":
        raise ValueError("only the seed set is streamed")
    start, n = _samples(path, spec)
    total = n_frames(n, spec)
    fr, edges, n_chroma = _Frames(spec), TUNING_EDGES, spec.n_chroma
    width = len(edges)
    # pass 1
    mel_sum = np.zeros(spec.n_mels)
    shape_sum = np.zeros(2)
    time_sum = np.zeros(2)
    sample_sum = 0.0
    db_max = np.float32(-np.inf)
    high = np.zeros((1 << (32 - long_kernels.LOW_BITS), width), np.int64)
    (first, last), seen, piece = centre_span(0, n, spec.sr), 0, []  # the embedding's samples
    for c in _chunks(path, spec, start, n):
        found = fr.compute(c)
        k = c.count
        if spec.embedding:
            lo, hi = max(0, first - seen), min(len(c.new), last - seen)
            if hi > lo:
                piece.append(c.new[lo:hi])
            seen += len(c.new)
        mel_sum += fr.melpow[:k].sum(axis=0, dtype=np.float64)
        shape_sum += fr.stats[:k].sum(axis=0)
        db_max = max(db_max, fr.db(k).max())
        long_kernels.frame_time_sums(c.view, c.first_rel, k, spec.n_fft, spec.hop_length,
                                     time_sum)
        sample_sum += c.new.sum(dtype=np.float64)
        long_kernels.tally_high(fr.pitches, fr.pitch_mags, found, edges, n_chroma, high)
    candidates = int(high.sum())
    if candidates > _MAX_CANDIDATES:
        raise ValueError(f"{candidates} pitch candidates: too many to count in int32")
    mean = sample_sum / n
    floor = db_max - np.float32(spec.top_db)
    cum = np.cumsum(high.sum(axis=1))
    highs = np.unique([np.searchsorted(cum, r, side="right")
                       for r in {(candidates - 1) // 2, candidates // 2}]) if candidates \
        else np.zeros(0, np.int64)
    # pass 2
    low = np.zeros((len(highs), 1 << long_kernels.LOW_BITS, width), np.int32)
    db_sum = np.zeros(spec.n_mels)
    moments = np.zeros(3)
    for c in _chunks(path, spec, start, n):
        found = fr.compute(c)
        clamped = np.maximum(fr.db(c.count), floor)
        db_sum += clamped.sum(axis=0, dtype=np.float64)
        if on_frames is not None:
            on_frames(np.concatenate([clamped, clamped @ fr.banks.dct], axis=1))
        long_kernels.moment_sums(c.new, mean, moments)
        long_kernels.tally_low(fr.pitches, fr.pitch_mags, found, edges, n_chroma,
                               highs.astype(np.int64), low)
    tuning = _tuning(high, low, highs, candidates)
    del high, low
    # pass 3
    bank = fr.banks.chroma_t[tuning]
    chroma = np.zeros(n_chroma)
    for c in _chunks(path, spec, start, n):
        fr.compute(c)
        raw = fr.mag[:c.count] @ bank
        peak = np.abs(raw).max(axis=1)
        peak[peak < np.finfo(np.float32).tiny] = 1.0
        chroma += (raw / peak[:, None]).sum(axis=0, dtype=np.float64)
    row = _row(spec, fr, total, n, time_sum, chroma, db_sum, mel_sum, mean, moments, shape_sum)
    if spec.embedding:
        row[spec.slices["embedding"]] = piece_embeddings([np.concatenate(piece)], spec.sr)[0]
    return row, n


def _row(spec, fr, total, n, time_sum, chroma, db_sum, mel_sum, mean, moments,
         shape_sum) -> np.ndarray:
    """The row in store order from the sums of the three passes."""
    at = spec.slices
    out = np.empty(spec.n_features, np.float32)
    out[at["zcr"]] = time_sum[0] / spec.n_fft / total
    out[at["chroma"]] = chroma / total
    out[at["mfcc"]] = (db_sum / total) @ fr.banks.dct.astype(np.float64)
    out[at["rms"]] = time_sum[1] / total
    out[at["mel"]] = mel_sum / total
    m2, m3, m4 = moments / n
    spread = m2 > VARIANCE_FLOOR
    out[at["moments"]] = (mean, m2, m3 / m2 ** 1.5 if spread else 0.0,
                          m4 / (m2 * m2) - 3.0 if spread else 0.0)
    out[at["centroid"]] = shape_sum[0] / total
    out[at["bandwidth"]] = shape_sum[1] / total
    return out
