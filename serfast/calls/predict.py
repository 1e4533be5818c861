"""Bulk labelling of an archive of recordings: files -> channels -> labelled windows.

Every channel of every file is one task (``mix`` makes it one task per file); tasks run
on all cores in worker processes that each load the model once and label whole channels
(:mod:`serfast.calls.channel`). The parent writes the rows of each file as soon as the file
and every file before it are done, so outputs follow archive order and an interrupted
run resumes after the last finished file (:mod:`serfast.calls.labels`). A file that cannot
be read becomes an error row; the run goes on.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np

from ..errors import one_line
from ..io.audio import AudioError, audio_info
from .channel import ChannelResult, WindowOptions, channel_sums, label_channel
from .turns import split_by_speaker
from .html_report import DEFAULT_CHANNELS
from ..io.corpus import LABEL_ALIASES, CorpusError, is_audio, is_url, parse_path, scan
from ..features.device import describe, run_device
from . import labels as labels_csv
from .labels import LabelWriter
from ..workers import loaded, run_tasks, worker_count

__all__ = ["AUTO_MODEL", "LIST_EXTENSIONS", "SPEAKERS", "TELEPHONE_RATE", "PredictOptions",
           "PredictReport", "archive_speakers", "choose_model", "file_groups", "list_archive",
           "load_model", "model_fingerprint", "predict_archive", "read_headers", "run_task"]

#: progress(audio seconds done, audio seconds in total, files done, files failed)
Progress = Callable[[float, float, int, int], None]
#: Files of a list file (one path a line) have one of these extensions.
LIST_EXTENSIONS = (".txt", ".lst", ".list")
#: The model argument that lets the archive choose a shipped model (:func:`choose_model`).
AUTO_MODEL = "auto"
#: Recordings sampled at this rate (Hz) or less hold telephone-band audio at most.
TELEPHONE_RATE = 8000
#: Who speaks where (``PredictOptions.speakers``): "channel", every channel of every file
#: its own speaker; "folder", the files of one folder share a speaker per channel (a folder
#: of one speaker's clips; channel k of each file); "corpus", the files the corpus reader
#: gives one speaker share it per channel (a manifest's speaker column, or the names of a
#: corpus serfast knows: :func:`archive_speakers`), each other file alone; "archive", every
#: file's channel k is one group (clips of unknown speakers, recorded alike); "voice", the
#: channels whose voices cluster together are one group (clips of unknown speakers:
#: :mod:`serfast.calls.voice_groups`).
SPEAKERS = ("channel", "folder", "corpus", "archive", "voice")


@dataclass(frozen=True)
class PredictOptions:
    """How to label an archive; ``windows`` says how each channel is cut and scored
    (window and hop 0: the model's crop and half of it), on ``device``."""

    windows: WindowOptions = WindowOptions()
    mix: bool = False
    workers: int = 0  # 0 = every core
    resume: bool = False
    summary: str = ""  # default: named after the labels (labels.output_paths)
    segments: str = ""  # write merged segments here when set
    plots: str = ""  # write one timeline PNG per file into this folder when set
    channel_names: tuple[str, ...] = DEFAULT_CHANNELS  # titles of channels 0, 1, … in plots
    cluster: str = ""  # Dask scheduler address or local:N; "" = this machine
    device: str = "auto"  # auto | cpu | gpu (see serfast.features.device)
    min_confidence: float = 0.0  # windows whose top probability is below: "uncertain"
    speakers: str = "channel"  # one of SPEAKERS: the groups the model normalises over


@dataclass
class PredictReport:
    """What a run did (``skipped``: files finished by an earlier run, with --resume)."""

    files: int
    channels: int
    errors: int
    skipped: int
    audio_seconds: float
    speech_seconds: float
    windows: int
    seconds: float
    workers: int
    device: str = "CPU"  # where window features were computed, in words
    chosen: str = ""  # with model "auto": the shipped model chosen and why, in words


def list_archive(sources: list[str]) -> list[str]:
    """Audio files of folders (recursive, sorted), list files (one path a line, relative to
    the list), CSV manifests and files given directly, without duplicates. Entries of list
    files and manifests may be fsspec URLs (``s3://bucket/call.wav``), kept as they are."""
    return list(archive_speakers(sources))


def archive_speakers(sources: list[str]) -> dict[str, str]:
    """The files of :func:`list_archive`, in its order, each with the speaker serfast's
    corpus reader finds for it (:func:`serfast.io.corpus.scan`: a manifest's speaker
    column, or the file names of a corpus it knows); "" where it finds none and for the
    entries of list files."""
    files: list[tuple[str, str]] = []
    for src in sources:
        path = os.path.abspath(src)
        if not os.path.exists(path):
            raise CorpusError(f"not found: {src}")
        if path.lower().endswith(LIST_EXTENSIONS):
            with open(path, encoding="utf-8") as fh:
                entries = [line.strip() for line in fh
                           if line.strip() and not line.startswith("#")]
            files += [(e if is_url(e) else os.path.join(os.path.dirname(path), e), "")
                      for e in entries]
        elif os.path.isdir(path) or path.lower().endswith(".csv"):
            files += [(c.path, c.speaker) for c in scan(path).clips]
        else:
            files.append((path, parse_path(path).speaker if is_audio(path) else ""))
    out: dict[str, str] = {}
    for f, speaker in files:
        out.setdefault(f if is_url(f) else os.path.abspath(f), speaker)
    return out


def choose_model(headers: dict) -> tuple[str, str]:
    """The shipped model for an archive, from its files' headers (``{path: (sr, frames,
    channels)}``, an AudioError where unreadable): ``telephone`` when every readable
    recording is sampled at :data:`TELEPHONE_RATE` or less (call audio: the telephone
    model leads on it), else ``default``; and why, in words."""
    rates = [h[0] for h in headers.values() if not isinstance(h, AudioError)]
    if rates and max(rates) <= TELEPHONE_RATE:
        return "telephone", f"every recording is sampled at {TELEPHONE_RATE} Hz or less"
    wide = sum(r > TELEPHONE_RATE for r in rates)
    return "default", (f"{wide:,} recording{'s are' if wide > 1 else ' is'} sampled above "
                       f"{TELEPHONE_RATE} Hz" if wide else "no recording could be read")


def read_headers(files: list[str]) -> dict:
    """``{path: (sr, frames, channels)}``, an AudioError where a header cannot be read."""
    headers = {}
    for path in files:
        try:
            headers[path] = audio_info(path)
        except AudioError as err:
            headers[path] = err
    return headers


def load_model(model):
    """A Predictor: ``model`` itself, or the one saved in the folder ``model``; ModelError
    (one line) for a model whose feature set lacks the seed columns (``prosody``), which
    predict does not label."""
    if isinstance(model, (str, os.PathLike)):
        from ..model.saved import load_predictor

        model = load_predictor(os.fspath(model))
    if not model.spec.has_seed:
        from ..model.config import ModelError

        raise ModelError(f"the model was trained on feature set {model.spec.name!r}; predict "
                         "needs a set with the seed columns (train on a --features seed or "
                         "all store)")
    return model


def _load_for_run(model, silero: bool):
    """The run's model in this process or a worker (:func:`load_model`), Silero started
    first when the run uses it
    (:func:`serfast.calls.vad.start_silero`: it must come before TensorFlow)."""
    if silero:
        from .vad import start_silero

        start_silero()
    return load_model(model)


def model_fingerprint(model) -> str:
    """What identifies ``model`` for a resumed run: the SHA-256 of a model folder's
    files (their names relative to it and their bytes), or a Predictor's class name."""
    if not isinstance(model, (str, os.PathLike)):
        return type(model).__name__
    digest = hashlib.sha256()
    root = os.fspath(model)
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def run_task(path: str, channel: int | None, predictor, options: WindowOptions,
             sums: dict | None = None) -> ChannelResult:
    """Label one channel (``sums``: its speaker group's, see :func:`label_channel`); a
    failure becomes a result with ``error`` set."""
    try:
        return label_channel(path, channel, predictor, options, sums)
    except AudioError as err:
        error = str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must never stop the run
        error = f"failed: {one_line(err, with_type=True)}"
    n = len(predictor.labels)
    return ChannelResult(np.zeros(0), np.zeros(0), np.zeros((0, n), np.float32), error=error)


def _label_task(task: tuple, options: WindowOptions) -> tuple[int, int, ChannelResult]:
    """Task ``(file, channel index, path, channel, group sums or None)`` with the model
    :func:`loaded` in this process: ``(file, channel index, result)``."""
    i, k, path, channel, sums = task
    return i, k, run_task(path, channel, loaded(), options, sums)


def _sums_task(task: tuple, options: WindowOptions) -> tuple[int, int, dict | None]:
    """Task ``(file, channel index, path, channel)``: ``(file, channel index, its
    channel_sums)``; None where the channel has no window or cannot be read (labelling
    it later says why)."""
    i, k, path, channel = task
    try:
        return i, k, channel_sums(path, channel, loaded(), options)
    except Exception:  # noqa: BLE001 - its labelling task records the error
        return i, k, None


def _voice_task(task: tuple, options: WindowOptions) -> tuple[int, int, np.ndarray | None]:
    """Task ``(file, channel index, path, channel)``: ``(file, channel index, its voice)``;
    None where it has no speech or cannot be read (labelling it later says why)."""
    from .voice_groups import channel_voice

    i, k, path, channel = task
    try:
        return i, k, channel_voice(path, channel, loaded().spec, options)
    except Exception:  # noqa: BLE001 - its labelling task records the error
        return i, k, None


def file_groups(speakers_of: dict[str, str], speakers: str) -> dict[str, str]:
    """Each file of :func:`archive_speakers` -> the speaker group its channels belong to
    (channel ``k`` of every file of a group is one speaker) under ``speakers``: "folder",
    the file's folder (local path or URL); "corpus", the speaker the corpus reader found,
    else the file alone; "archive", one group of every file. ValueError (one line) for
    "folder" where a folder is named after an emotion (``angry/``): its clips are many
    speakers', and one group would standardise the emotion away."""
    if speakers == "folder":
        folders = {f: f.rsplit("/", 1)[0] if is_url(f) else os.path.dirname(f)
                   for f in speakers_of}
        for folder in folders.values():
            name = folder.rstrip("/").rsplit("/", 1)[-1]
            if name.lower() in LABEL_ALIASES:
                raise ValueError(f"--speakers folder: {name}/ is named after an emotion, so "
                                 "its files are not one speaker's (--speakers corpus takes "
                                 "speakers from a manifest or from known file names)")
        return {f: "folder:" + folder for f, folder in folders.items()}
    if speakers == "archive":
        return dict.fromkeys(speakers_of, "archive")
    return {f: f"speaker:{who}" if who else f"file:{f}" for f, who in speakers_of.items()}


def _file_channels(files: list[str], headers: dict, mix: bool) -> list[tuple]:
    """``(file index, channel index, path, channel)`` of every channel of ``files``."""
    return [(i, k, path, c) for i, path in enumerate(files)
            for k, c in enumerate(_channels(headers[path], mix))]


def _voice_groups(files: list[str], headers: dict, mix: bool, spec, workers: int,
                  cluster: str, wopts: WindowOptions, shared: tuple, loaded_here) -> dict:
    """The first pass of ``speakers`` "voice": (path, channel index) -> its cluster's
    group; channels without speech are in none (each is normalised alone)."""
    from .voice_groups import voice_clusters

    tasks = _file_channels(files, headers, mix)
    voices = {}
    for i, k, voice in run_tasks(_voice_task, tasks, spec, workers, cluster, (wopts,),
                                 load=_load_for_run, shared=shared, loaded_here=loaded_here):
        if voice is not None:
            voices[files[i], k] = voice
    keys = [(path, k) for _, k, path, _ in tasks if (path, k) in voices]  # archive order
    clusters = voice_clusters(np.array([voices[key] for key in keys]))
    return {key: f"voice:{c}" for key, c in zip(keys, clusters)}


def _group_sums(files: list[str], groups: dict, headers: dict, mix: bool, spec,
                workers: int, cluster: str, wopts: WindowOptions, shared: tuple,
                loaded_here) -> dict:
    """The second pass of grouped speakers: group -> the :func:`channel_sums` of all its
    channels (``groups``: (path, channel index) -> group), added; only for groups of
    several channels (a channel alone is normalised by its own windows anyway)."""
    from collections import Counter

    from ..model.predictor import add_sums

    size = Counter(groups.values())
    tasks = [t for t in _file_channels(files, headers, mix)
             if size[groups.get((t[2], t[1]))] > 1]
    totals: dict = {}
    for i, k, sums in run_tasks(_sums_task, tasks, spec, workers, cluster, (wopts,),
                                load=_load_for_run, shared=shared, loaded_here=loaded_here):
        key = groups[files[i], k]
        totals[key] = add_sums(totals.get(key), sums)
    return totals


def _channels(header, mix: bool) -> list[int | None]:
    """The channels a file is labelled as (None: the mix), from its header; none for a
    header that could not be read (an AudioError)."""
    if isinstance(header, AudioError):
        return []
    return [None] if mix else list(range(header[2]))


def _plot_names(files: list[str]) -> dict[str, str]:
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    twice = {s for s in stems if stems.count(s) > 1}
    return {f: (s + "-" + hashlib.sha1(f.encode()).hexdigest()[:8] if s in twice else s)
            + ".png" for f, s in zip(files, stems)}


#: Most files that may wait, finished, for an earlier file before new tasks start.
MAX_WAITING_FILES = 256


class _ArchiveRun:
    """The files of a run and their channels: results arrive in any order; each file's
    rows are written once it and every file before it are done."""

    def __init__(self, files: list[str], headers: dict, labels: list[str], writer: LabelWriter,
                 mix: bool, plots: str, plot_names: dict[str, str],
                 channel_names: tuple[str, ...], progress: Progress | None,
                 min_confidence: float = 0.0):
        self.files, self.labels, self.writer = files, labels, writer
        self.min_confidence = min_confidence
        self.plots, self.plot_names, self.progress = plots, plot_names, progress
        self.channel_names = channel_names
        self.names: list[list[str]] = []  # per file: its channels' names
        self.results: list[list] = []  # per file: its channels' results (None: to come)
        self.durations: list[float] = []  # per file: seconds of audio
        self.tasks: list[tuple] = []  # (file, channel index, path, channel or None)
        for i, path in enumerate(files):
            self._plan(i, path, headers[path], mix)
        self.total = sum(self.durations)
        self.next = 0  # the first file not yet written
        self.done_seconds, self.written, self.channels, self.errors = 0.0, 0, 0, 0
        self.speech, self.windows = 0.0, 0

    def _plan(self, i: int, path: str, header, mix: bool) -> None:
        """Tasks of file ``i`` from its header; a header that could not be read (an
        AudioError) is its one result."""
        if isinstance(header, AudioError):
            self.names.append([""])
            self.results.append([ChannelResult(np.zeros(0), np.zeros(0),
                                               np.zeros((0, len(self.labels))),
                                               error=str(header))])
            self.durations.append(0.0)
            return
        sr, frames, _ = header
        channels = _channels(header, mix)
        self.names.append(["mix" if c is None else str(c) for c in channels])
        self.results.append([None] * len(channels))
        self.durations.append(frames / sr if sr else 0.0)
        self.tasks += [(i, k, path, c) for k, c in enumerate(channels)]

    def record_header_errors(self) -> None:
        """Record the results known before any task runs."""
        for i, k in [(i, k) for i, rs in enumerate(self.results) for k, r in enumerate(rs)
                     if r]:
            self.record(i, k, self.results[i][k])

    def may_start(self, task: tuple) -> bool:
        """Whether ``task`` may start: its file is not too far past the next to write."""
        return task[0] - self.next < MAX_WAITING_FILES

    def record(self, i: int, k: int, res: ChannelResult) -> None:
        """Result of channel ``k`` of file ``i``; writes every file now complete."""
        self.results[i][k] = res
        self.done_seconds += self.durations[i] / len(self.results[i])
        while self.next < len(self.files) and None not in self.results[self.next]:
            self._write(self.next)
            self.results[self.next] = []
            self.next += 1
        if self.progress:
            self.progress(self.done_seconds, self.total, self.written, self.errors)

    def _write(self, i: int) -> None:
        path, names, results = self.files[i], self.names[i], self.results[i]
        label_rows, summary_rows = [], []
        for name, res in [part for pair in zip(names, results)
                          for part in split_by_speaker(*pair)]:  # turns: one per voice
            label_rows += labels_csv.label_rows(path, name, res, self.labels,
                                                self.min_confidence)
            summary_rows += labels_csv.summary_rows(path, name, res, self.labels,
                                                    self.min_confidence)
            self.channels += 1
            self.errors += bool(res.error)
            self.speech += sum(b - a for a, b in res.regions)
            self.windows += len(res.starts)
        self.writer.write(path, label_rows, summary_rows)
        self.written += 1
        if self.plots:
            from .timeline import plot_timeline

            os.makedirs(self.plots, exist_ok=True)
            plot_timeline(os.path.join(self.plots, self.plot_names[path]), path, names,
                          results, self.labels, self.channel_names)


def _speaker_groups(options: PredictOptions) -> bool:
    """Whether ``options`` group channels across files (``speakers`` other than
    "channel"); ValueError (one line) for an unknown choice or one that contradicts
    ``turns``."""
    if options.speakers not in SPEAKERS:
        raise ValueError(f"speakers must be one of {', '.join(SPEAKERS)} "
                         f"(got {options.speakers!r})")
    grouped = options.speakers != "channel"
    if grouped and options.windows.turns:
        raise ValueError(f"--speakers {options.speakers} gives each channel one speaker; "
                         "--turns splits a channel into two voices: use one of them")
    return grouped


def predict_archive(sources: list[str], model, out: str,
                    options: PredictOptions = PredictOptions(),
                    progress: Progress | None = None) -> PredictReport:
    """Label every file of ``sources`` with ``model`` (a Predictor, a model folder, the
    name of a shipped model, or :data:`AUTO_MODEL`: :func:`choose_model` picks one);
    writes ``out`` (the labels CSV), the summary and, if asked, segments and plots.
    ``resume`` continues an interrupted run only if the model folder's files, the list of
    archive files and the options are those it started with (else OutputError).

    With ``speakers`` "folder", "corpus" or "archive" the model normalises channel ``k``
    of the files of a group (:func:`file_groups`) together, as one speaker's; with
    "voice", the channels whose voices cluster together (a first pass finds each
    channel's voice: :mod:`serfast.calls.voice_groups`). A pass sums
    each group's statistics (:func:`channel_sums`, over every file, finished ones too),
    the second labels each channel with its group's sums, so every window is scored
    exactly as if its group's windows were scored in one call.

    On a cluster, a model folder must be readable by the workers; a Predictor object is
    sent to each worker once.
    """
    start = time.perf_counter()
    summary_path = options.summary or labels_csv.output_paths(out).summary
    labels_csv.check_folders([out, summary_path, options.segments])
    grouped = _speaker_groups(options)
    device = run_device(options.device, options.cluster)
    speakers_of = archive_speakers(sources)
    all_files = list(speakers_of)
    headers = read_headers(all_files)
    chosen = ""
    if isinstance(model, (str, os.PathLike)):
        from ..model.saved import model_folder

        if os.fspath(model) == AUTO_MODEL:
            model, why = choose_model(headers)
            chosen = f"{model} ({why})"
        model = model_folder(model)  # "default": the model shipped inside the package
    by_voice = options.speakers == "voice"
    named = file_groups(speakers_of, options.speakers) if grouped and not by_voice else {}
    if by_voice:
        from .voice_groups import check_channels

        check_channels(sum(len(_channels(h, options.mix)) for h in headers.values()))
    silero = options.windows.vad.method == "silero"
    predictor = _load_for_run(model, silero)
    if grouped and not getattr(predictor, "chunked_groups", False):
        from ..model.config import ModelError

        raise ModelError(f"--speakers {options.speakers} needs a model that normalises per "
                         "speaker (serfast's network); this model does not")
    labels, spec = list(predictor.labels), predictor.spec
    wopts = replace(options.windows.sized(spec),
                    device="auto" if options.cluster else device)
    fingerprint = {"model": model_fingerprint(model), "labels": labels,
                   "spec": spec.to_dict(), "mix": options.mix, "window": asdict(wopts),
                   "min_confidence": options.min_confidence,
                   **({"speakers": options.speakers} if grouped else {}),
                   "archive": hashlib.sha256("\n".join(all_files).encode()).hexdigest()}
    writer = LabelWriter(out, summary_path, labels, fingerprint, options.resume,
                         options.segments)
    try:
        files = [f for f in all_files if f not in writer.done]
        run = _ArchiveRun(files, headers, labels, writer, options.mix, options.plots,
                          _plot_names(all_files), options.channel_names, progress,
                          options.min_confidence)
        run.record_header_errors()
        workers = worker_count(options.workers, len(run.tasks))
        model_ref = model if isinstance(model, str) else predictor  # workers load a folder
        passes = (spec, workers, options.cluster, wopts, (model_ref, silero), predictor)
        if by_voice:
            groups = _voice_groups(all_files, headers, options.mix, *passes)
        else:  # channel k of the files of a named group
            groups = {(path, k): f"{named[path]}/{k}"
                      for _, k, path, _ in _file_channels(all_files, headers, options.mix)
                      if path in named}
        totals = _group_sums(all_files, groups, headers, options.mix, *passes) if grouped else {}
        tasks = [t + (totals.get(groups.get((t[2], t[1]))),) for t in run.tasks]
        for i, k, res in run_tasks(_label_task, tasks, spec, workers, options.cluster,
                                   (wopts,), load=_load_for_run, shared=(model_ref, silero),
                                   loaded_here=predictor, may_start=run.may_start):
            run.record(i, k, res)
    except BaseException:
        writer.abort()
        raise
    writer.finish(options.segments)
    return PredictReport(len(files), run.channels, run.errors, len(all_files) - len(files),
                         run.total, run.speech, run.windows, time.perf_counter() - start,
                         workers, describe(device), chosen)
