"""Speaker embeddings of clips and windows: who speaks, and how their voice departs from
its usual self.

The encoder is Resemblyzer's GE2E voice encoder (Apache-2.0, ``voice_encoder.LICENSE``
beside it), trained on thousands of speakers to map 1.6 s of speech to a 256-value unit
vector that is close for one voice and far between voices; ``bench/build_voice_encoder.py``
converted it to ONNX (weights in float16), and onnxruntime runs it on the CPU.

Its input is Resemblyzer's: 16 kHz audio scaled to -30 dBFS (here per partial, since a
channel streams), the power of a 400-sample periodic-Hann STFT every 160 samples (centred,
zero-padded), 40 Slaney mel bands (librosa's bank), 160 frames. A span of speech gets the
partial centred in it; one shorter than 1.6 s is zero-padded, as Resemblyzer pads.

Uses: a store's ``embedding`` columns (:func:`clip_embeddings`: the unit vector and the
mean of the second LSTM layer's outputs; standardised per speaker, they carry emotion),
the same columns of a call's windows (:func:`span_embeddings` of the speech each window
was placed over), ``predict --turns`` and ``--speakers voice`` (the unit vectors: who
speaks when).
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = ["MODEL", "PARTIAL_SECONDS", "centre_piece", "centre_span", "clip_embeddings",
           "embed_pieces", "partial_mels", "piece_embeddings", "span_embeddings"]

#: The ONNX model shipped with serfast.
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "voice_encoder.onnx")
RATE = 16000  # Hz
N_FFT, HOP, N_MELS, N_FRAMES = 400, 160, 40, 160
PARTIAL_SECONDS = N_FRAMES * HOP / RATE  # 1.6 s
LEVEL_DBFS = -30.0
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic


@functools.lru_cache(maxsize=1)
def _mel_bank_t() -> np.ndarray:
    """librosa's mel bank at 16 kHz, transposed: (201, 40) float32; from serfast's table
    cache."""
    from .table_cache import cached_tables

    def build():
        import librosa

        return {"mel": librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS)}

    bank = cached_tables("voice-mel", [RATE, N_FFT, N_MELS], build)["mel"]
    return np.ascontiguousarray(bank.astype(np.float32).T)


@functools.lru_cache(maxsize=1)
def _session():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # predict runs one channel per core
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])


def partial_mels(pieces16: list[np.ndarray]) -> np.ndarray:
    """(n, 160, 40) float32 encoder inputs of pieces of up to 1.6 s each of 16 kHz audio,
    all pieces' frames in one FFT call."""
    frames = np.empty((len(pieces16), N_FRAMES, N_FFT), np.float32)
    padded = np.zeros(N_FRAMES * HOP + N_FFT, np.float32)
    for i, piece in enumerate(pieces16):
        y = np.asarray(piece, np.float64)[:N_FRAMES * HOP]
        rms = np.sqrt(np.mean(y * y)) if len(y) else 0.0
        gain = 10 ** (LEVEL_DBFS / 20) / rms if rms > 0 else 1.0
        padded[:] = 0.0
        padded[N_FFT // 2:N_FFT // 2 + len(y)] = y * gain
        frames[i] = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    frames *= _HANN
    spectra = np.fft.rfft(frames, axis=-1)  # float32 in, complex64 out
    power = np.square(spectra.real) + np.square(spectra.imag)
    return power @ _mel_bank_t()


def clip_embeddings(signals: list[np.ndarray], sr: int) -> np.ndarray:
    """(n, 512) float32 encoder columns of whole clips (each (n_i,) float32 at ``sr`` Hz,
    at least one sample): :func:`piece_embeddings` of the (up to) 1.6 s at each clip's
    centre. A clip's row is the same alone or in any batch."""
    return piece_embeddings([centre_piece(y, 0, len(y), sr) for y in signals], sr)


def piece_embeddings(pieces: list[np.ndarray], sr: int) -> np.ndarray:
    """(n, 512) float32: for up to 1.6 s each of audio at ``sr`` Hz, the unit embedding
    (256), then the mean of the second LSTM layer's outputs (256) over the frames that
    hold audio (not the zero padding of a short piece)."""
    import soxr

    pieces = [soxr.resample(p, sr, RATE, "HQ") if sr != RATE else p for p in pieces]
    if not pieces:
        return np.zeros((0, 512), np.float32)
    mels = partial_mels(pieces)
    vectors, layer2 = _session().run(None, {"mels": mels})
    counts = [min(N_FRAMES, max(1, -(-len(p) // HOP))) for p in pieces]
    states = np.stack([layer2[:c, i].mean(axis=0) for i, c in enumerate(counts)])
    return np.hstack([vectors, states]).astype(np.float32)


def span_embeddings(audio: np.ndarray, base: int, starts, ends, sr: int) -> np.ndarray:
    """(n, 512) encoder columns (:func:`piece_embeddings`) of spans ``[starts[i],
    ends[i])`` (samples at ``sr``) of a channel whose ``audio`` begins at sample ``base``:
    each of the 1.6 s at its centre. Equal spans are embedded once."""
    spans = list(zip(starts, ends))
    unique = sorted(set(spans))
    rows = piece_embeddings([centre_piece(audio, s - base, e - base, sr) for s, e in unique],
                            sr)
    row = {span: k for k, span in enumerate(unique)}
    return rows[[row[span] for span in spans]]


def centre_span(start: int, end: int, sr: int) -> tuple[int, int]:
    """The samples [lo, hi) of the (up to) 1.6 s at the centre of [start, end) (at ``sr``)."""
    half = int(round(PARTIAL_SECONDS * sr / 2))
    centre = (start + end) // 2
    return max(start, centre - half), min(end, centre + half)


def centre_piece(audio: np.ndarray, start: int, end: int, sr: int) -> np.ndarray:
    """The (up to) 1.6 s at the centre of ``audio[start:end]`` (samples at ``sr``)."""
    lo, hi = centre_span(start, end, sr)
    return np.asarray(audio[lo:hi], np.float32)


def embed_pieces(pieces: list[np.ndarray], sr: int) -> np.ndarray:
    """(n, 256) unit embeddings of up to 1.6 s each of audio at ``sr`` Hz."""
    return piece_embeddings(pieces, sr)[:, :256]
