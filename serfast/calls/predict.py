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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ..io.audio import AudioError, audio_info, one_line
from .channel import ChannelResult, WindowOptions, label_channel
from ..io.corpus import CorpusError, is_url, scan
from .denoise import DenoiseOptions
from ..features.device import describe, run_device
from ..features.filterbanks import filter_banks, install_filter_banks
from . import labels as labels_csv
from .labels import LabelWriter
from ..malloc import reuse_freed_memory
from .vad import VadOptions

#: progress(audio seconds done, audio seconds in total, files done, files failed)
Progress = Callable[[float, float, int, int], None]
#: Files of a list file (one path a line) have one of these extensions.
LIST_EXTENSIONS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class PredictOptions:
    """How to label; window/hop 0 mean the model's crop and half of it."""

    window: float = 0.0
    hop: float = 0.0
    mix: bool = False
    workers: int = 0
    resume: bool = False
    summary: str = ""  # default: summary.csv beside the labels
    segments: str = ""  # write merged segments here when set
    plots: str = ""  # write one timeline PNG per file into this folder when set
    block_seconds: float = 30.0
    batch: int = 64
    leads: tuple[float, ...] = WindowOptions.leads  # see WindowOptions.leads
    vad: VadOptions = field(default_factory=VadOptions)
    denoise: DenoiseOptions | None = field(default_factory=DenoiseOptions)  # None: off
    cluster: str = ""  # Dask scheduler address or local:N; "" = this machine
    device: str = "auto"  # auto | cpu | gpu (see serfast.features.device)


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


def list_archive(sources: list[str]) -> list[str]:
    """Audio files of folders (recursive, sorted), list files (one path a line, relative to
    the list), CSV manifests and files given directly, without duplicates. Entries of list
    files and manifests may be fsspec URLs (``s3://bucket/call.wav``), kept as they are."""
    files: list[str] = []
    for src in sources:
        path = os.path.abspath(src)
        if not os.path.exists(path):
            raise CorpusError(f"not found: {src}")
        if path.lower().endswith(LIST_EXTENSIONS):
            with open(path, encoding="utf-8") as fh:
                entries = [line.strip() for line in fh
                           if line.strip() and not line.startswith("#")]
            files += [e if is_url(e) else os.path.join(os.path.dirname(path), e)
                      for e in entries]
        elif os.path.isdir(path) or path.lower().endswith(".csv"):
            files += [c.path for c in scan(path).clips]
        else:
            files.append(path)
    return list(dict.fromkeys(f if is_url(f) else os.path.abspath(f) for f in files))


def load_model(model):
    """A Predictor: ``model`` itself, or the one saved in the folder ``model``."""
    if isinstance(model, (str, os.PathLike)):
        from ..model.saved import load_predictor

        return load_predictor(os.fspath(model))
    return model


_WORKER: dict = {}


def _init_worker(model, spec, banks, options: WindowOptions) -> None:
    threadpool_limits(1)
    reuse_freed_memory()
    install_filter_banks(spec, banks)
    _WORKER.update(predictor=load_model(model), options=options)


def run_task(path: str, channel: int | None, predictor, options: WindowOptions) -> ChannelResult:
    """Label one channel; a failure becomes a result with ``error`` set."""
    try:
        return label_channel(path, channel, predictor, options)
    except AudioError as err:
        error = str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must never stop the run
        error = f"failed: {one_line(err, with_type=True)}"
    n = len(predictor.labels)
    return ChannelResult(np.zeros(0), np.zeros(0), np.zeros((0, n), np.float32), error=error)


def _worker_task(index: int, path: str, channel: int | None) -> tuple[int, ChannelResult]:
    return index, run_task(path, channel, _WORKER["predictor"], _WORKER["options"])


def _plot_names(files: list[str]) -> dict[str, str]:
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    twice = {s for s in stems if stems.count(s) > 1}
    return {f: (s + "-" + hashlib.sha1(f.encode()).hexdigest()[:8] if s in twice else s)
            + ".png" for f, s in zip(files, stems)}


def predict_archive(sources: list[str], model, out: str,
                    options: PredictOptions = PredictOptions(),
                    progress: Progress | None = None) -> PredictReport:
    """Label every file of ``sources`` with ``model`` (a Predictor or a model folder);
    writes ``out`` (labels.csv), the summary and, if asked, segments and plots."""
    start = time.perf_counter()
    device = run_device(options.device, options.cluster)
    predictor = load_model(model)
    labels, spec = list(predictor.labels), predictor.spec
    window = options.window or spec.duration or 2.5
    wopts = WindowOptions(window=window, hop=options.hop or window / 2,
                          block_seconds=options.block_seconds, batch=options.batch,
                          leads=options.leads, vad=options.vad, denoise=options.denoise,
                          device="auto" if options.cluster else device)
    summary_path = options.summary or os.path.join(os.path.dirname(os.path.abspath(out)),
                                                   "summary.csv")
    fingerprint = {"model": model if isinstance(model, str) else type(model).__name__,
                   "labels": labels, "spec": spec.to_dict(), "mix": options.mix,
                   "window": asdict(wopts)}
    writer = LabelWriter(out, summary_path, labels, fingerprint, options.resume)
    all_files = list_archive(sources)
    files = [f for f in all_files if f not in writer.done]
    plot_names = _plot_names(all_files)

    # file index -> channel names, durations, results; header errors are results already
    names, results, tasks, durations = [], [], [], []
    for i, path in enumerate(files):
        try:
            sr, frames, n_channels = audio_info(path)
        except AudioError as err:
            names.append([""])
            results.append([ChannelResult(np.zeros(0), np.zeros(0),
                                          np.zeros((0, len(labels))), error=str(err))])
            durations.append(0.0)
            continue
        chans = [None] if options.mix else list(range(n_channels))
        names.append(["mix" if c is None else str(c) for c in chans])
        results.append([None] * len(chans))
        durations.append(frames / sr if sr else 0.0)
        tasks += [(i, k, path, c) for k, c in enumerate(chans)]
    total = sum(durations)
    counts = {"done_s": 0.0, "files": 0, "errors": 0, "channels": 0, "speech": 0.0,
              "windows": 0, "next": 0}

    def record(i: int, k: int, res: ChannelResult) -> None:
        results[i][k] = res
        counts["done_s"] += durations[i] / len(results[i])
        while counts["next"] < len(files) and None not in results[counts["next"]]:
            j = counts["next"]
            _write_file(files[j], names[j], results[j])
            results[j] = []
            counts["next"] += 1
        if progress:
            progress(counts["done_s"], total, counts["files"], counts["errors"])

    def _write_file(path: str, chan_names: list[str], chan_results) -> None:
        label_rows, summary_rows = [], []
        for name, res in zip(chan_names, chan_results):
            label_rows += labels_csv.label_rows(path, name, res, labels)
            summary_rows += labels_csv.summary_rows(path, name, res, labels)
            counts["channels"] += 1
            counts["errors"] += bool(res.error)
            counts["speech"] += sum(b - a for a, b in res.regions)
            counts["windows"] += len(res.starts)
        writer.write(path, label_rows, summary_rows)
        counts["files"] += 1
        if options.plots:
            from .timeline import plot_timeline

            os.makedirs(options.plots, exist_ok=True)
            plot_timeline(os.path.join(options.plots, plot_names[path]), path, chan_names,
                          chan_results, labels)

    for i, k in [(i, k) for i, rs in enumerate(results) for k, r in enumerate(rs) if r]:
        record(i, k, results[i][k])  # files whose header could not be read
    workers = max(1, min(options.workers or os.cpu_count() or 1, len(tasks) or 1))
    if options.cluster:
        _run_cluster(tasks, options.cluster, model, spec, wopts, record)
    elif workers == 1:
        reuse_freed_memory()
        with threadpool_limits(1):
            for i, k, path, c in tasks:
                record(i, k, run_task(path, c, predictor, wopts))
    else:
        _run_pool(tasks, workers, model if isinstance(model, str) else predictor, spec, wopts,
                  record, lambda: counts["next"])
    writer.finish(options.segments)
    return PredictReport(len(files), counts["channels"], counts["errors"],
                         len(all_files) - len(files), total, counts["speech"],
                         counts["windows"], time.perf_counter() - start, workers,
                         describe(device))


def _cluster_task(task, banks, model, spec, wopts: WindowOptions):
    """One channel on a Dask worker, which loads each model once."""
    i, k, path, c = task
    key = model if isinstance(model, str) else id(model)
    if _WORKER.get("key") != key:
        _init_worker(model, spec, banks, wopts)
        _WORKER["key"] = key
    return i, k, run_task(path, c, _WORKER["predictor"], wopts)


def _run_cluster(tasks, address: str, model, spec, wopts: WindowOptions, record) -> None:
    """Channels as Dask tasks; a model folder must be readable by the workers, a
    Predictor object is sent to each worker once."""
    from ..cluster import connect, map_shards

    shared = (filter_banks(spec),) + (() if isinstance(model, str) else (model,))
    args = (model, spec, wopts) if isinstance(model, str) else (spec, wopts)
    with connect(address) as client:
        for i, k, res in map_shards(client, _cluster_task, tasks, args, broadcast=shared):
            record(i, k, res)


#: Most files that may wait, finished, for an earlier file before new tasks start.
MAX_WAITING_FILES = 256


def _run_pool(tasks, workers, model, spec, wopts, record, next_file) -> None:
    banks = filter_banks(spec)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(model, spec, banks, wopts)) as pool:
        pending: dict = {}
        queue = list(reversed(tasks))
        while queue or pending:
            while queue and len(pending) < 2 * workers and \
                    queue[-1][0] - next_file() < MAX_WAITING_FILES:
                i, k, path, c = queue.pop()
                pending[pool.submit(_worker_task, i, path, c)] = k
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                k = pending.pop(f)
                i, res = f.result()
                record(i, k, res)
