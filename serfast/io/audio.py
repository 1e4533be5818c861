"""Audio decoding and resampling, exactly as ``librosa.load`` does it: whole clips, or one
channel of a long recording block by block.

soundfile decodes (whatever libsndfile reads: WAV incl. 8 kHz µ-law/A-law, FLAC, OGG,
MP3, …) from a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``, …; other
protocols only when allowed, see :func:`~serfast.io.corpus.url_refusal`).
Channels are averaged to mono (or one is picked), and soxr resamples with librosa's
default quality (``soxr_hq``); the streaming resampler's concatenated output is identical
to resampling the whole channel at once. Every failure becomes an :class:`AudioError`
with a one-line reason.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Protocol

import numpy as np
import soundfile as sf
import soxr

from .corpus import is_url, url_refusal
from ..errors import one_line
from ..features.spec import FeatureSpec

__all__ = ["AudioError", "BlockFilter", "DECODE_ERRORS", "audio_info", "channel_blocks",
           "load_clip", "open_audio", "resample"]

#: Exceptions that mean "this is not usable audio" while opening or decoding a file
#: (ImportError: a URL whose fsspec backend is not installed).
DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError,
                 ImportError)


class AudioError(Exception):
    """A file that cannot be used as audio; ``str(err)`` is a one-line reason."""


def _cannot_decode(err: BaseException) -> AudioError:
    return AudioError(f"cannot decode: {one_line(err)}")


@contextlib.contextmanager
def open_audio(path: str) -> Iterator[sf.SoundFile]:
    """``path`` (local, or an fsspec URL of an allowed protocol: see
    :func:`~serfast.io.corpus.url_refusal`) opened by soundfile; AudioError if it cannot be."""
    if is_url(path) and url_refusal(path):
        raise AudioError(f"cannot open: {url_refusal(path)}")
    with contextlib.ExitStack() as stack:
        try:
            if is_url(path):
                import fsspec  # only for URLs

                source = stack.enter_context(fsspec.open(path, "rb"))
            else:
                source = path
            f = stack.enter_context(sf.SoundFile(source))
        except DECODE_ERRORS as err:
            raise _cannot_decode(err) from None
        yield f


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 ``y`` (n,) like ``librosa.resample(res_type="soxr_hq")``.

    The output has ``ceil(n * sr_out / sr_in)`` samples (zero-padded or trimmed).
    """
    if sr_in == sr_out:
        return y
    n_out = int(np.ceil(y.shape[-1] * float(sr_out) / sr_in))
    out = soxr.resample(y, sr_in, sr_out, quality="HQ")
    if out.shape[0] < n_out:
        out = np.pad(out, (0, n_out - out.shape[0]))
    return np.asarray(out[:n_out], dtype=np.float32)


def load_clip(path: str, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """Decode the spec's crop of ``path`` as mono float32 (n,) at ``spec.sr`` Hz.

    Equivalent to ``librosa.load(path, sr=spec.sr, offset=spec.offset,
    duration=spec.duration or None)``. A file shorter than the crop gives a shorter clip,
    as in librosa. Raises :class:`AudioError` when the file cannot be decoded, holds no
    samples after ``offset``, or holds NaN/inf samples.
    """
    with open_audio(path) as f:
        sr_native = f.samplerate
        start = int(spec.offset * sr_native)
        if start >= f.frames > 0 or (start > 0 and f.frames == 0):
            raise AudioError(
                f"no audio after offset {spec.offset:g} s "
                f"(file is {f.frames / sr_native:.3f} s long)")
        frames = int(spec.duration * sr_native) if spec.duration else -1
        try:
            if start:
                f.seek(start)
            y = f.read(frames=frames, dtype="float32", always_2d=True)
        except DECODE_ERRORS as err:
            raise _cannot_decode(err) from None
    if y.shape[0] == 0:
        raise AudioError("no samples")
    y = y[:, 0] if y.shape[1] == 1 else y.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError("non-finite samples (NaN or inf)")
    y = resample(np.ascontiguousarray(y), sr_native, spec.sr)
    if y.shape[0] == 0:
        raise AudioError("no samples after resampling")
    return y


def audio_info(path: str) -> tuple[int, int, int]:
    """(sample rate Hz, frames, channels) of ``path`` from its header; AudioError if unreadable."""
    with open_audio(path) as f:
        return f.samplerate, f.frames, f.channels


class BlockFilter(Protocol):
    """A stateful filter on a stream of mono float32 blocks at one sample rate."""

    def push(self, y: np.ndarray) -> np.ndarray:
        """Filter the next block (n,); returns what is ready (any length)."""

    def finish(self) -> np.ndarray:
        """What is still held back once the last block was pushed."""


def channel_blocks(path: str, channel: int | None, sr_out: int,
                   block_seconds: float = 30.0,
                   block_filter: Callable[[int], BlockFilter] | None = None,
                   start: int = 0) -> Iterator[np.ndarray]:
    """Yield one channel of ``path`` as consecutive float32 (n,) blocks at ``sr_out`` Hz.

    ``channel`` is a 0-based channel index, or None for the mean of all channels.
    ``block_seconds`` is the decoded block length in seconds of input audio. Only one
    block is decoded at a time, so memory does not grow with the length of the file.
    ``block_filter``, when given, is called once with the file's sample rate (Hz); the
    filter it returns sees the decoded channel at that rate, before resampling (for
    example :class:`serfast.calls.denoise.NoiseReducer`). Raises :class:`AudioError`
    (one-line reason) when the file cannot be decoded, the channel does not exist, or a
    sample is NaN/inf; blocks already yielded stay valid. ``start`` input frames are
    skipped first.
    """
    with open_audio(path) as f:
        sr, n_channels = f.samplerate, f.channels
        if channel is not None and not 0 <= channel < n_channels:
            raise AudioError(f"no channel {channel} (file has {n_channels})")
        block = max(1, int(block_seconds * sr))
        stream = (soxr.ResampleStream(sr, sr_out, 1, dtype="float32", quality="HQ")
                  if sr != sr_out else None)
        filt = block_filter(sr) if block_filter is not None else None
        if start:
            f.seek(start)
        while True:
            try:
                x = f.read(block, dtype="float32", always_2d=True)
            except DECODE_ERRORS as err:
                raise _cannot_decode(err) from None
            last = x.shape[0] < block
            y = x[:, channel] if channel is not None else x.mean(axis=1, dtype=np.float32)
            y = np.ascontiguousarray(y, dtype=np.float32)
            if not np.isfinite(y).all():
                raise AudioError("non-finite samples (NaN or inf)")
            if filt is not None:
                y = filt.push(y)
                if last:
                    y = np.concatenate([y, filt.finish()])
            if stream is not None:
                y = stream.resample_chunk(y, last=last)
            yield y
            if last:
                return
