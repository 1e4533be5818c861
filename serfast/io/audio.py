"""Audio decoding and resampling, exactly as ``librosa.load`` does it.

soundfile decodes (whatever libsndfile reads: WAV incl. µ-law/A-law, FLAC, OGG, MP3, …),
channels are averaged to mono, and soxr resamples with librosa's default quality
(``soxr_hq``). Every failure becomes an :class:`AudioError` with a one-line reason.
"""

from __future__ import annotations

import contextlib

import numpy as np
import soundfile as sf
import soxr

from ..features.spec import FeatureSpec

class AudioError(Exception):
    """A file that cannot be used as audio; ``str(err)`` is a one-line reason."""

def one_line(err: BaseException, with_type: bool = False) -> str:
    """``err`` as one line (for error rows and messages), optionally prefixed by its type."""
    text = " ".join(str(err).split())
    if with_type:
        return f"{type(err).__name__}: {text}"
    return text or type(err).__name__

def _open(path: str):
    """A context manager giving what soundfile opens: the path, or an fsspec file for URLs."""
    if "://" in path:
        import fsspec  # only for object stores: s3://, gs://, file://, …

        return fsspec.open(path, "rb")
    return contextlib.nullcontext(path)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 ``y`` like ``librosa.resample(res_type="soxr_hq")``.

    The output has ``ceil(len(y) * sr_out / sr_in)`` samples (zero-padded or trimmed).
    """
    if sr_in == sr_out:
        return y
    n_out = int(np.ceil(y.shape[-1] * float(sr_out) / sr_in))
    out = soxr.resample(y, sr_in, sr_out, quality="HQ")
    if out.shape[0] < n_out:
        out = np.pad(out, (0, n_out - out.shape[0]))
    return np.asarray(out[:n_out], dtype=np.float32)

def load_clip(path: str, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """Decode the spec's crop of ``path`` as mono float32 at ``spec.sr``.

    Equivalent to ``librosa.load(path, sr=spec.sr, offset=spec.offset,
    duration=spec.duration or None)``. A file shorter than the crop gives a shorter clip,
    as in librosa. Raises :class:`AudioError` when the file cannot be decoded, holds no
    samples after ``offset``, or holds NaN/inf samples.
    """
    try:
        with _open(path) as source, sf.SoundFile(source) as f:
            sr_native = f.samplerate
            start = int(spec.offset * sr_native)
            if start >= f.frames > 0 or (start > 0 and f.frames == 0):
                raise AudioError(
                    f"no audio after offset {spec.offset:g} s "
                    f"(file is {f.frames / sr_native:.3f} s long)")
            if start:
                f.seek(start)
            frames = int(spec.duration * sr_native) if spec.duration else -1
            y = f.read(frames=frames, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError,
            ImportError) as err:
        raise AudioError(f"cannot decode: {one_line(err)}") from None
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
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise AudioError(f"cannot decode: {one_line(err)}") from None
    return info.samplerate, info.frames, info.channels

