"""Line-noise reduction for call audio: streaming spectral subtraction, one channel.

A call's background (line hiss, hum, room noise) is steady, speech is not. The channel is
cut into frames of about ``frame_seconds`` (a power of two in samples, half overlapping,
square-root Hann windows so that unmodified frames add back to the input exactly). The
noise power of each frequency bin is estimated by minimum statistics, as the VAD's floor
is: the ``percentile`` of the bin's power over each chunk of ``chunk_seconds``, and its
minimum over the last ``chunks`` chunks. Each frame's bins are scaled by the power gain
``max(1 - over_subtraction * noise / power, gain_floor)`` (square-rooted for amplitudes):
bins near the noise floor lose up to ``10 * log10(1 / gain_floor)`` dB, speech bins well
above it keep their level.

Frames are processed chunk by chunk from the start of the channel, so the output does
not depend on how the input is split into blocks; it lags the input by up to one chunk.
``serfast predict`` runs it on each channel before the VAD and the windows (on by
default, ``--no-denoise`` off; bench/RESULTS.md has what it gains on call archives).
``serfast extract`` never uses it: its features stay librosa's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class DenoiseOptions:
    """Spectral subtraction parameters (times in seconds, percentile in %)."""

    over_subtraction: float = 4.0
    gain_floor: float = 0.02
    percentile: float = 20.0
    frame_seconds: float = 0.032
    chunk_seconds: float = 5.0
    chunks: int = 12


class NoiseReducer:
    """Streaming spectral subtraction of one channel at ``sr`` Hz.

    :meth:`push` float32 blocks, then :meth:`finish`; the concatenated outputs have the
    length of the concatenated inputs.
    """

    def __init__(self, sr: int, options: DenoiseOptions = DenoiseOptions()):
        import scipy.fft  # here, not at import: predict's parent never denoises

        self.fft = scipy.fft
        self.opt = options
        self.n = 1 << max(4, int(round(np.log2(max(options.frame_seconds * sr, 16)))))
        self.hop = self.n // 2
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n) / self.n)
                              ).astype(np.float32)
        self.chunk = max(1, int(round(options.chunk_seconds * sr / self.hop)))
        # input not yet framed, starting at the next frame; the first frame starts hop
        # samples before the signal so that every sample is covered by two frames
        self.buf = np.zeros(self.hop, np.float32)
        self.floors: list[np.ndarray] = []  # per-chunk noise estimates (last ``chunks``)
        self.tail = np.zeros(self.hop, np.float32)  # overlap-add carry of the last frame
        self.pushed = self.emitted = 0
        self.first = True  # the first hop output samples belong to the padding

    def push(self, y: np.ndarray) -> np.ndarray:
        """Add the next block; returns the output samples now final (float32)."""
        self.pushed += len(y)
        self.buf = np.concatenate([self.buf, np.asarray(y, np.float32)])
        out = []
        while (len(self.buf) - self.n) // self.hop + 1 >= self.chunk:
            out.append(self._chunk_out(self._frame(self.chunk)))
        return self._emit(out)

    def finish(self) -> np.ndarray:
        """Process the rest (zero-padded to whole frames); returns the last samples."""
        pad = (-(len(self.buf) - self.hop)) % self.hop + self.hop
        self.buf = np.concatenate([self.buf, np.zeros(pad, np.float32)])
        n_frames = (len(self.buf) - self.n) // self.hop + 1
        out = []
        while n_frames > 0:  # one partial chunk: push left less than a whole one
            take = min(n_frames, self.chunk)
            out.append(self._chunk_out(self._frame(take)))
            n_frames -= take
        out.append(self.tail)
        return self._emit(out, final=True)

    def _frame(self, k: int) -> np.ndarray:
        """Spectra (k, n // 2 + 1) of the next ``k`` frames of the buffer, consumed."""
        frames = sliding_window_view(self.buf[:(k + 1) * self.hop], self.n)[::self.hop]
        self.buf = self.buf[k * self.hop:]
        return self.fft.rfft(frames * self.window, axis=1)

    def _chunk_out(self, spec: np.ndarray) -> np.ndarray:
        """Scale the spectra of one chunk by their gains and overlap-add them; returns
        the samples completed (``hop`` per frame)."""
        power = spec.real ** 2 + spec.imag ** 2
        rank = int(self.opt.percentile / 100 * (len(power) - 1))  # percentile, rounded down
        floor = np.partition(np.ascontiguousarray(power.T), rank, axis=1)[:, rank]
        self.floors = (self.floors + [floor])[-self.opt.chunks:]
        noise = np.min(self.floors, axis=0)
        gain = np.maximum(1 - np.float32(self.opt.over_subtraction) * noise
                          / np.maximum(power, np.float32(1e-30)), np.float32(self.opt.gain_floor))
        frames = self.fft.irfft(spec * np.sqrt(gain), self.n, axis=1) * self.window
        k, h = len(frames), self.hop
        out = np.zeros((k + 1) * h, np.float32)
        out[:h] += self.tail
        out[:k * h] += frames[:, :h].reshape(-1)
        out[h:] += frames[:, h:].reshape(-1)
        self.tail = out[k * h:]
        return out[:k * h]

    def _emit(self, parts: list[np.ndarray], final: bool = False) -> np.ndarray:
        y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if self.first and len(y):
            y, self.first = y[self.hop:], False
        if final:
            y = y[:self.pushed - self.emitted]
        self.emitted += len(y)
        return y.astype(np.float32)
