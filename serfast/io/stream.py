"""Streaming decoder: one channel (or the mix) of a long recording, block by block.

Decoding is soundfile (WAV incl. 8 kHz µ-law/A-law, FLAC, OGG, MP3, …); resampling is
soxr's streaming resampler at librosa's quality (``HQ``), whose concatenated output is
identical to resampling the whole channel at once. Only one block is decoded at a time,
so memory does not grow with the length of the file. Line noise can be reduced on the way
(:mod:`serfast.denoise`, at the file's own rate, before resampling).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .audio import AudioError, one_line
from ..calls.denoise import DenoiseOptions, NoiseReducer

_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError)


def channel_blocks(path: str, channel: int | None, sr_out: int,
                   block_seconds: float = 30.0,
                   denoise: DenoiseOptions | None = None) -> Iterator[np.ndarray]:
    """Yield one channel of ``path`` as consecutive float32 (n,) blocks at ``sr_out`` Hz.

    ``channel`` is a 0-based channel index, or None for the mean of all channels.
    ``block_seconds`` is the decoded block length in seconds of input audio; ``denoise``
    set: blocks pass through a :class:`~serfast.denoise.NoiseReducer` first. Raises
    :class:`AudioError` (one-line reason) when the file cannot be decoded, the channel
    does not exist, or a sample is NaN/inf; blocks already yielded stay valid.
    """
    try:
        f = sf.SoundFile(path)
    except _ERRORS as err:
        raise AudioError(f"cannot decode: {one_line(err)}") from None
    with f:
        sr, n_channels = f.samplerate, f.channels
        if channel is not None and not 0 <= channel < n_channels:
            raise AudioError(f"no channel {channel} (file has {n_channels})")
        block = max(1, int(block_seconds * sr))
        stream = (soxr.ResampleStream(sr, sr_out, 1, dtype="float32", quality="HQ")
                  if sr != sr_out else None)
        reducer = NoiseReducer(sr, denoise) if denoise is not None else None
        while True:
            try:
                x = f.read(block, dtype="float32", always_2d=True)
            except _ERRORS as err:
                raise AudioError(f"cannot decode: {one_line(err)}") from None
            last = x.shape[0] < block
            y = x[:, channel] if channel is not None else x.mean(axis=1, dtype=np.float32)
            y = np.ascontiguousarray(y, dtype=np.float32)
            if not np.isfinite(y).all():
                raise AudioError("non-finite samples (NaN or inf)")
            if reducer is not None:
                y = reducer.push(y)
                if last:
                    y = np.concatenate([y, reducer.finish()])
            if stream is not None:
                y = stream.resample_chunk(y, last=last)
            yield y
            if last:
                return
