"""Label one channel of a recording: blocks -> noise reduction -> VAD -> windows ->
features -> model.

The channel is streamed (:func:`serfast.io.audio.channel_blocks`; steady line noise is
reduced at the file's own rate, before resampling, unless ``denoise`` is None:
:mod:`serfast.calls.denoise`); only the audio that a window may still
need is kept (a few tens of seconds whatever the recording's length). Windows are placed
over each speech region found by :mod:`serfast.calls.vad`:

* a region no longer than the window gets one window per ``leads`` entry, starting that
  long before the region (which is padded by the VAD); a negative entry centres the
  window. The model was trained on crops that start 0.6 s into a clip, shortly before
  the words, so where the words fall in a crop varies; the default (0, 0.25, 0.5 s)
  averages three such placements (compared with others in bench/RESULTS.md);
* a longer region gets windows every ``hop`` from its start, plus one ending at its end,
  so every speech sample is covered.

Windows start on the channel's frame grid (multiples of ``hop_length``). On the CPU their
features come from frames computed once per channel (:mod:`serfast.calls.window_features`:
each STFT frame once however many windows overlap it); with ``device`` gpu (or auto
finding one) the engine computes each window whole
(:func:`serfast.features.device.batch_features`) but for its pitch and voice columns,
which come from the channel's pitch frames observed once, as on the CPU
(:class:`serfast.calls.window_prosody.ChannelProsody`). The model sees all the windows of
the channel as one speaker group (per-speaker normalisation), or, given the statistics of
a larger group (:func:`channel_sums` of each of its channels), as part of that group.
With a model that can score a group in chunks
(:attr:`serfast.model.Predictor.chunked_groups`, the serfast network), the normalisation
statistics of the whole channel are summed while its windows stream by
(:meth:`~serfast.model.Predictor.group_sums`), the windows' frame features wait in a
temporary file once more than ``2 * group`` are held, and at the end the windows are
scored ``group`` at a time with the statistics of the whole channel: exactly as one call
over all of them, with bounded memory. Other models see consecutive runs of ``group`` to
``2 * group - 1`` windows (each some minutes of speech) as groups.

A window's speaker embedding (a model of ``spec.embedding``, and ``turns``) is the
encoder's of the speech the window was placed over, the 1.6 s at the centre of that span
(:func:`serfast.features.voice_encoder.span_embeddings`): a short region's, so that its
lead windows share one, as a corpus clip gets the 1.6 s at its centre, the middle of its
words; a window inside a longer region gets its own centre's, as per window.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field, replace

import numpy as np

from .denoise import DenoiseOptions, NoiseReducer
from ..features.device import batch_features, resolve_device
from ..features.spec import FeatureSpec
from ..io.audio import audio_info, channel_blocks
from .turns import speaker_turns
from .vad import VadOptions, speech_detector

__all__ = ["ChannelResult", "WindowOptions", "channel_sums", "label_channel", "region_windows",
           "stream_channel"]


@dataclass(frozen=True)
class WindowOptions:
    """Windows (seconds), decoding blocks (seconds of input audio) and feature batches.

    ``window`` 0 is the model's crop (its spec's ``duration``, or FeatureSpec's default
    for a model of whole clips), ``hop`` 0 half the window: see :meth:`sized`.
    """

    window: float = 0.0
    hop: float = 0.0
    block_seconds: float = 30.0
    batch: int = 64
    group: int = 128
    #: a short region gets one window starting each of these before it (< 0: centred)
    leads: tuple[float, ...] = (0.0, 0.25, 0.5)
    vad: VadOptions = VadOptions()
    denoise: DenoiseOptions | None = DenoiseOptions()  # None: the channel as recorded
    device: str = "cpu"  # where window features are computed: cpu | gpu | auto
    #: label a mixed channel (--mix, or a file's only channel) per speaker turn
    turns: bool = False

    def sized(self, spec: FeatureSpec) -> WindowOptions:
        """These options with ``window`` and ``hop`` in seconds for a model of ``spec``."""
        window = self.window or spec.duration or FeatureSpec.duration
        return replace(self, window=window, hop=self.hop or window / 2)


@dataclass
class ChannelResult:
    """Windows of one channel and what the model said about them.

    starts, ends : (n,) float64 seconds.  probs : (n, n_labels) float32.
    regions : speech regions as (start, end) seconds.  seconds : channel length.
    speakers : (n,) int64 voice index of each window, or None (one speaker).
    """

    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray
    regions: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    speakers: np.ndarray | None = None  # (n,) voice of each window (serfast.calls.turns)


def region_windows(a: int, b: int, win: int, hop: int,
                   leads: tuple[int, ...] = (-1,)) -> list[int]:
    """Start samples of the windows over the speech region [a, b) (see module doc);
    ``leads`` in samples, negative: centred. Starts are never before sample 0."""
    if b - a <= win:
        return sorted({max(0, (a + b) // 2 - win // 2 if lead < 0 else a - lead)
                       for lead in leads})
    starts = list(range(a, b - win + 1, hop))
    if starts[-1] + win < b:
        starts.append(b - win)
    return starts


class _Labeller:
    """State of one channel while its blocks stream through."""

    def __init__(self, predictor, options: WindowOptions, sums: dict | None = None,
                 score: bool = True):
        self.predictor, self.spec = predictor, predictor.spec
        self.scoring = score  # False: only sum the normalisation statistics (channel_sums)
        self.opt = options = options.sized(self.spec)
        sr = self.spec.sr
        grid = self.spec.hop_length  # window starts and the hop lie on the frame grid
        self.win = int(round(options.window * sr))
        self.hop = max(1, int(round(options.hop * sr / grid))) * grid
        self.leads = tuple(int(round(lead * sr)) if lead >= 0 else -1
                           for lead in options.leads)
        self.vad = speech_detector(sr, self.spec.hop_length, options.vad)
        self.audio, self.base = np.zeros(0, np.float32), 0  # audio[0] is sample `base`
        #: windows not yet cut: (start, the short region it was placed over or None)
        self.planned: list[tuple[int, tuple[int, int] | None]] = []
        self.open_emitted: set[int] = set()  # starts already planned in the open region
        #: windows cut, features not computed: (start, end, their speech span)
        self.pending: list[tuple[int, int, tuple[int, int]]] = []
        # windows from frames computed once on the CPU (sets with the seed columns);
        # otherwise each window is computed whole by the engine, but for its pitch and
        # voice columns, from pitch frames observed once
        from .window_features import ChannelFrames  # Numba: not in predict's parent
        from .window_prosody import ChannelProsody

        # the engine's columns; the speaker embedding's come from the speech spans (below)
        self.engine_spec = replace(self.spec, embedding=False)
        self.channel_frames = (ChannelFrames(self.engine_spec) if self.spec.has_seed
                               and resolve_device(options.device) == "cpu" else None)
        self.prosody = (ChannelProsody(self.spec) if self.channel_frames is None
                        and self.spec.has_prosody else None)
        self.spans: list[tuple[int, int]] = []
        self.values: list[np.ndarray] = []  # features of windows not yet scored
        self.frames: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []
        self.regions: list[tuple[int, int]] = []
        # whole-channel normalisation (chunked_groups): sums, every window's values, and
        # the frames of the first windows in a temporary file
        self.chunked = bool(getattr(predictor, "chunked_groups", False))
        self.sums: dict | None = sums  # given: the speaker group's, not summed here
        self.fixed_sums = sums is not None
        self.spill = None
        self.spilled: list[int] = []  # frame counts of the windows in the spill file
        self.turns = False  # find speaker turns (label_channel decides)
        self.voices: list[np.ndarray] = []  # every window's speaker embedding, for the turns

    @property
    def end(self) -> int:
        return self.base + len(self.audio)

    def push(self, y: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, y])
        self._plan(self.vad.push(y))
        self._cut(final=False)
        keep = min([self.vad.decided_sample - self.win] + [s for s, _ in self.planned])
        if self.vad.open_start is not None:  # later windows start after those planned already,
            # or the region may stay short and get a centred window
            keep = min(keep, max(self.open_emitted) if self.open_emitted
                       else self.vad.open_start - max(self.win, *self.leads))
        keep -= keep % self.spec.hop_length  # the audio starts on the frame grid
        if keep > self.base:
            self.audio = self.audio[keep - self.base:]
            self.base = keep
            if self.channel_frames is not None:
                self.channel_frames.trim(keep)
            if self.prosody is not None:
                self.prosody.trim(keep)

    def flush(self) -> None:
        """Close the channel: its last regions are planned, cut and computed."""
        self._plan(self.vad.finish())
        self._cut(final=True)
        self._features()

    def finish(self) -> ChannelResult:
        self.flush()
        if self.chunked:
            self._score_chunked()
        else:
            self._score(final=True)
        sr, n = self.spec.sr, len(self.spans)
        order = sorted(range(n), key=lambda i: self.spans[i])
        spans = np.array([self.spans[i] for i in order], np.float64).reshape(n, 2) / sr
        probs = (np.concatenate(self.probs)[order] if self.probs
                 else np.zeros((0, len(self.predictor.labels)), np.float32))
        regions = [(a / sr, min(b, self.end) / sr) for a, b in self.regions]
        speakers = None
        if self.turns:
            voices = np.concatenate(self.voices)[order] if self.voices else np.zeros((0, 1))
            speakers = speaker_turns(voices, spans[:, 0])
        return ChannelResult(spans[:, 0], spans[:, 1], probs, regions, self.end / sr,
                             speakers=speakers)

    def _spill(self) -> None:
        """Move the frames held in memory to the temporary file."""
        if self.spill is None:
            self.spill = tempfile.TemporaryFile()
        for f in self.frames:
            self.spill.write(np.ascontiguousarray(f, np.float32).tobytes())
            self.spilled.append(len(f))
        self.frames = []

    def _spilled_frames(self, i: int, j: int) -> list[np.ndarray]:
        """Frames of spilled windows i..j-1."""
        if i >= j:
            return []
        dim = self.frame_dim
        lengths = self.spilled[i:j]
        self.spill.seek(sum(self.spilled[:i]) * dim * 4)
        flat = np.frombuffer(self.spill.read(sum(lengths) * dim * 4), np.float32)
        return np.split(flat.reshape(-1, dim), np.cumsum(lengths)[:-1])

    def _score_chunked(self) -> None:
        """Score every window, ``group`` at a time, with the whole channel's sums."""
        values = np.concatenate(self.values) if self.values else np.zeros((0, 0), np.float32)
        n, g, k = len(values), self.opt.group, len(self.spilled)
        rows = np.concatenate([values, np.full((n, 1), np.nan, np.float32)], axis=1)
        for i in range(0, n, g):
            j = min(n, i + g)
            frames = None
            if self.predictor.needs_frames:
                frames = (self._spilled_frames(i, min(j, k))
                          + (self.frames[max(i, k) - k:j - k] if j > k else []))
            probs = self.predictor.predict_proba(rows[i:j], frames, np.zeros(j - i, np.int64),
                                                 sums=self.sums)
            self.probs.append(np.asarray(probs, np.float32))
        if self.spill is not None:
            self.spill.close()

    def _score(self, final: bool) -> None:
        """Score waiting windows: all at the end, else ``group`` once 2 * group wait."""
        values = np.concatenate(self.values) if self.values else np.zeros((0, 0), np.float32)
        g = self.opt.group
        take = len(values) if final else (g if len(values) >= 2 * g else 0)
        if take == 0:
            return
        rows = np.concatenate([values[:take], np.full((take, 1), np.nan, np.float32)], axis=1)
        frames = self.frames[:take] if self.predictor.needs_frames else None
        probs = self.predictor.predict_proba(rows, frames, np.zeros(take, np.int64))
        self.probs.append(np.asarray(probs, np.float32))
        self.values = [values[take:]]
        self.frames = self.frames[take:]

    def _plan(self, closed: list[tuple[int, int]]) -> None:
        for a, b in closed:
            self.regions.append((a, b))
            short = (a, b) if b - a <= self.win else None  # all its windows share its speech
            self.planned += [(s, short)
                             for s in region_windows(a, b, self.win, self.hop, self.leads)
                             if s not in self.open_emitted]
            self.open_emitted = set()
        if self.vad.open_start is not None:  # windows certain to exist in a long open region
            a, b = self.vad.open_start, self.vad.open_end
            for s in range(a, b - self.win + 1, self.hop):
                if s not in self.open_emitted:
                    self.open_emitted.add(s)
                    self.planned.append((s, None))

    def _cut(self, final: bool) -> None:
        keep = []
        grid = self.spec.hop_length
        for s, short in self.planned:
            s = max(s, 0) // grid * grid
            e = s + self.win
            if e > self.end and not final:
                keep.append((s, short))
                continue
            if e > self.end:
                s = max(0, self.end - self.win) // grid * grid
                e = min(s + self.win, self.end)
            a, b = short or (s, e)
            self.pending.append((s, e, (max(a, self.base), min(b, self.end))))
            if len(self.pending) >= self.opt.batch:
                self._features()
        self._features()
        self.planned = keep

    def _features(self) -> None:
        if not self.pending:
            return
        starts, ends, speech = (list(part) for part in zip(*self.pending))
        if self.channel_frames is not None:
            batch = self.channel_frames.features(self.audio, self.base, starts, ends,
                                                 self.predictor.needs_frames)
        else:
            pitch_voice = None if self.prosody is None else (
                lambda rows: self.prosody.pitch_voice(self.audio, self.base,
                                                      [starts[i] for i in rows],
                                                      [ends[i] for i in rows]))
            batch = batch_features([self.audio[s - self.base:e - self.base]
                                    for s, e in zip(starts, ends)], self.engine_spec,
                                   self.predictor.needs_frames, self.opt.device,
                                   pitch_voice=pitch_voice)
        self.spans += list(zip(starts, ends))
        if self.spec.embedding or self.turns:
            from ..features.voice_encoder import span_embeddings  # onnxruntime: only here

            encoded = span_embeddings(self.audio, self.base, *zip(*speech), self.spec.sr)
            if self.spec.embedding:
                batch.values = np.hstack([batch.values, encoded])
            if self.turns:
                self.voices.append(encoded[:, :256])
        self.values.append(batch.values)
        if batch.frames is not None:
            self.frames += batch.frames
        self.pending = []
        if not self.chunked:
            self._score(final=False)
            return
        rows = np.concatenate([batch.values, np.full((len(batch.values), 1), np.nan,
                                                     np.float32)], axis=1)
        if not self.fixed_sums:
            self.sums = self.predictor.group_sums(rows, batch.frames, self.sums)
        if not self.scoring:  # only the sums are wanted: nothing is held
            self.values, self.frames = [], []
            return
        if batch.frames:
            self.frame_dim = batch.frames[0].shape[1]
        if len(self.frames) >= 2 * self.opt.group:
            self._spill()


def stream_channel(state, path: str, channel: int | None, options: WindowOptions) -> None:
    """Push channel ``channel`` of ``path`` block by block into ``state`` (anything with
    ``spec.sr`` and ``push(block)``), noise-reduced as ``options`` say and resampled to
    ``state.spec.sr``."""
    reducer = (None if options.denoise is None
               else functools.partial(NoiseReducer, options=options.denoise))
    for block in channel_blocks(path, channel, state.spec.sr, options.block_seconds,
                                reducer):
        state.push(block)


def label_channel(path: str, channel: int | None, predictor,
                  options: WindowOptions = WindowOptions(),
                  sums: dict | None = None) -> ChannelResult:
    """Label channel ``channel`` of ``path`` (None: the mix of all channels).

    ``sums``: the normalisation statistics of the speaker group the channel belongs to
    (:func:`channel_sums` of each of its channels, added with
    :func:`serfast.model.predictor.add_sums`); None normalises the channel as its own
    group. Raises :class:`serfast.io.audio.AudioError` when the file cannot be decoded.
    """
    state = _Labeller(predictor, options, sums)
    state.turns = options.turns and (channel is None or audio_info(path)[2] == 1)
    stream_channel(state, path, channel, options)
    return state.finish()


def channel_sums(path: str, channel: int | None, predictor,
                 options: WindowOptions = WindowOptions()) -> dict | None:
    """The per-speaker normalisation statistics of the windows :func:`label_channel`
    would score (:meth:`serfast.model.Predictor.group_sums`; None: no window), computed
    the same way and with the same bounded memory, nothing scored. The predictor must
    score groups in chunks (``chunked_groups``; else ModelError)."""
    if not getattr(predictor, "chunked_groups", False):
        from ..model.config import ModelError

        raise ModelError("this model cannot score a group in chunks")
    state = _Labeller(predictor, options, score=False)
    stream_channel(state, path, channel, options)
    state.flush()
    return state.sums
