"""The extraction pipeline: corpus -> audio -> features -> store, on all cores.

Work is shipped to worker processes in shards of clips; each worker decodes a clip once,
makes its augmented copies, computes features (on the CPU one clip at a time, or the whole
shard in one batch on the GPU, which the workers share), and sends rows back; the parent
writes them into the store as they arrive (see :mod:`serfast.io.store` for atomicity and
resume).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np

from .errors import one_line
from .io.audio import AudioError, load_clip
from .io.augment import AUGMENTATIONS, augment
from .io.corpus import Clip, scan
from .features.device import batch_features, describe, gpu_processes, resolve_device, run_device
from .features.spec import FeatureSpec
from .features.voice_encoder import clip_embeddings
from .io.spilled_frames import FrameSink
from .io.store import RowMeta, RowResult, StoreWriter, check_out, long_frames_dir
from .workers import run_tasks, worker_count

__all__ = ["ExtractError", "ExtractOptions", "Summary", "decode_task", "extract", "feature_rows",
           "plan_rows"]

log = logging.getLogger(__name__)

#: A task: one clip's path and its rows as (row index, augmentation or "").
ClipTask = tuple[str, list[tuple[int, str]]]
#: Most clips per shard on the GPU (one batch per shard).
GPU_SHARD = 256
#: Peak |sample| above which a frame's float32 power |STFT|^2 can overflow (> 3.4e38).
LOUD = 1e15
#: progress(rows done, rows in total, rows ok, rows failed)
Progress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class ExtractOptions:
    """How to run an extraction (the spec says *what* to compute)."""

    spec: FeatureSpec = FeatureSpec()
    workers: int = 0  # 0 = every core
    frames: bool = False
    augment: tuple[str, ...] = ()
    copies: int = 1
    seed: int = 0
    resume: bool = False
    overwrite: bool = False  # replace OUT's store or interrupted run (serfast's files only)
    shard_size: int = 16
    cluster: str = ""  # Dask scheduler address or local:N; "" = this machine
    device: str = "auto"  # auto | cpu | gpu (see serfast.features.device)


@dataclass
class Summary:
    """What a run did; ``ok == 0`` means nothing could be extracted."""

    rows: int
    ok: int
    errors: int
    ignored: list[str]
    seconds: float
    where: str  # e.g. "2 CPU worker processes", "Dask cluster local:2"; "" when complete
    complete: bool = False  # resume found the store finished: nothing was computed
    changed: int = 0  # clips whose files changed since the interrupted run (computed again)
    notes: list[str] = field(default_factory=list)  # clips kept without their corpus label


class ExtractError(Exception):
    """A run that stopped before the end (a worker process died); what it finished is
    kept and ``--resume`` continues it. One-line message."""


def plan_rows(clips: list[Clip], kinds: Iterable[str], copies: int) -> list[RowMeta]:
    """One row per clip, each followed by ``copies`` rows per augmentation kind."""
    kinds = list(kinds)
    for kind in kinds:
        if kind not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {kind!r}; choose from "
                             f"{', '.join(AUGMENTATIONS)}")
    plan = []
    for c in clips:
        source = len(plan)
        base = dict(path=c.path, dataset=c.dataset, speaker=c.speaker,
                    gender=c.gender, label=c.label)
        plan.append(RowMeta(**base))
        plan.extend(RowMeta(**base, augment=k, source=source)
                    for k in kinds for _ in range(copies))
    return plan


def decode_task(task: ClipTask, spec: FeatureSpec,
                seed: int) -> tuple[list[tuple[int, np.ndarray]], list[RowResult]]:
    """Decode one clip once and make its augmented copies.

    Returns ``([(row, mono float32 signal at spec.sr)], [error rows])``.
    """
    path, rows = task
    try:
        y = load_clip(path, spec)
    except AudioError as err:
        return [], [RowResult(r, error=str(err)) for r, _ in rows]
    except Exception as err:  # noqa: BLE001 - a bad file must never stop the run
        reason = f"cannot decode: {one_line(err, with_type=True)}"
        return [], [RowResult(r, error=reason) for r, _ in rows]
    signals, errors = [], []
    for r, kind in rows:
        try:
            signals.append((r, augment(kind, y, spec.sr, seed, r) if kind else y))
        except Exception as err:  # noqa: BLE001
            reason = f"augmentation error: {one_line(err, with_type=True)}"
            errors.append(RowResult(r, error=reason))
    return signals, errors


def feature_rows(signals: list[tuple[int, np.ndarray]], spec: FeatureSpec, frames: bool,
                 device: str = "cpu", gpu_share: float = 1.0) -> list[RowResult]:
    """Features of decoded rows: one clip per call on the CPU (so a row never depends on
    its neighbours and one failure stays one row; the encoder's columns in one batch,
    which gives each clip's alone), one batch on the GPU, using at most
    ``gpu_share`` of its memory. If the GPU fails (out of memory, say), the CPU computes
    the batch and a warning says so: a busy GPU loses no rows."""
    def row(r: int, y: np.ndarray, batch, i: int) -> RowResult:
        values, rows = batch.values[i], batch.frames[i] if frames else None
        if not (np.isfinite(values).all() and (rows is None or np.isfinite(rows).all())):
            peak = float(np.max(np.abs(y)))
            loud = f"; peak |sample| {peak:.3g} overflows float32 power" if peak > LOUD else ""
            return RowResult(r, error=f"feature error: non-finite features (NaN or inf{loud})")
        return RowResult(r, values, duration=len(y) / spec.sr, frames=rows)

    if device == "gpu":
        try:
            batch = batch_features([y for _, y in signals], spec, frames, "gpu",
                                   memory_share=gpu_share)
            return [row(r, y, batch, i) for i, (r, y) in enumerate(signals)]
        except Exception as err:  # noqa: BLE001 - the CPU computes the same rows
            log.warning("GPU batch failed (%s); computing its %d clips on the CPU",
                        one_line(err, with_type=True), len(signals))
    from .features.cpu import compute_batch  # Numba and SciPy: only where features run

    own = replace(spec, embedding=False)  # the encoder runs once for the batch, below
    embedded = _embeddings([y for _, y in signals], spec)
    results = []
    for i, (r, y) in enumerate(signals):
        try:
            batch = compute_batch([y], own, frames=frames)
            if spec.embedding:
                vectors = (embedded[i] if embedded is not None
                           else clip_embeddings([y], spec.sr)[0])
                batch.values = np.hstack([batch.values, vectors[None]])
            results.append(row(r, y, batch, 0))
        except Exception as err:  # noqa: BLE001
            reason = f"feature error: {one_line(err, with_type=True)}"
            results.append(RowResult(r, error=reason))
    return results


def _embeddings(clips: list[np.ndarray], spec: FeatureSpec) -> np.ndarray | None:
    """The encoder's columns of every clip in one batch (a row is the same alone or in
    any batch: ``clip_embeddings``), or None without the embedding or when the batch fails
    (then each clip is embedded alone, so one bad clip stays one error row)."""
    if not spec.embedding or not clips:
        return None
    try:
        return clip_embeddings(clips, spec.sr)
    except Exception:  # noqa: BLE001 - retried clip by clip
        return None


def _decode_shard(shard: list[ClipTask], spec: FeatureSpec, frames: bool,
                  seed: int) -> tuple[list[tuple[int, np.ndarray]], list[RowResult]]:
    """Decode every clip of a shard: ([(row, signal)], error rows)."""
    signals, errors = [], []
    for task in shard:
        ok, bad = decode_task(task, spec, seed)
        signals += ok
        errors += bad
    return signals, errors


#: The error of an augmented copy of a long whole file (copies hold the whole signal).
LONG_COPY_ERROR = ("not made: augmented copies of whole files over {:g} s would hold the "
                   "whole file in memory (the original row is kept)")


def streamed_rows(task: ClipTask, spec: FeatureSpec, frames: bool = False,
                  frames_dir: str = "") -> list[RowResult]:
    """The rows of a long whole file (see :func:`serfast.features.long_clips.long_route`),
    streamed in bounded memory: its own row (with ``frames``, its frame-level features
    written to ``frames_dir/<row>.f4``, or kept in memory when ``frames_dir`` is "", as
    on a Dask worker); augmented copies are error rows (:data:`LONG_COPY_ERROR`)."""
    from .features.long_clips import LONG_SECONDS, stream_features  # Numba: only here
    path, rows = task
    out = [RowResult(r, error=LONG_COPY_ERROR.format(LONG_SECONDS)) for r, aug in rows if aug]
    for r in [r for r, aug in rows if not aug]:
        out.append(_streamed_row(path, r, spec, frames, frames_dir, stream_features))
    return out


def _streamed_row(path: str, r: int, spec: FeatureSpec, frames: bool, frames_dir: str,
                  stream_features) -> RowResult:
    sink = FrameSink(os.path.join(frames_dir, f"{r}.f4") if frames_dir else "") \
        if frames else None
    try:
        values, n = stream_features(path, spec, sink)
        error = "" if np.isfinite(values).all() and (sink is None or sink.finite) else \
            "feature error: non-finite features (NaN or inf)"
    except AudioError as err:
        error = str(err)
    except Exception as err:  # noqa: BLE001 - a bad file must never stop the run
        error = f"cannot decode: {one_line(err, with_type=True)}"
    finally:
        if sink is not None:
            sink.close()
    if error:
        if sink is not None:
            sink.discard()
        return RowResult(r, error=error)
    return RowResult(r, values, duration=n / spec.sr,
                     frames=None if sink is None else sink.result())


#: The error of every row of a whole file too long for the prosody sets.
PROSODY_LONG_ERROR = ("not computed: prosody features of whole files over {:g} s would hold "
                      "the whole file in memory (extract with --duration, or --features seed)")


def _process_shard(shard: list[ClipTask], spec: FeatureSpec, frames: bool, seed: int,
                   frames_dir: str = "", device: str = "cpu",
                   gpu_share: float = 1.0) -> list[RowResult]:
    """Decode and compute every row of a shard of clips on ``device``; long whole files
    are streamed on the CPU (their frames written to ``frames_dir``, see
    :func:`streamed_rows`)."""
    from .features.long_clips import PROSODY_MAX_SECONDS, REFUSE, STREAM, long_route
    routes = [long_route(path, spec) for path, _ in shard]
    refused = [RowResult(r, error=PROSODY_LONG_ERROR.format(PROSODY_MAX_SECONDS))
               for t, route in zip(shard, routes) if route == REFUSE for r, _ in t[1]]
    streamed = [res for t, route in zip(shard, routes) if route == STREAM
                for res in streamed_rows(t, spec, frames, frames_dir)]
    signals, errors = _decode_shard([t for t, route in zip(shard, routes) if not route],
                                    spec, frames, seed)
    return refused + streamed + errors + feature_rows(signals, spec, frames, device, gpu_share)


def _cluster_shard(shard: list[ClipTask], spec: FeatureSpec, frames: bool,
                   seed: int) -> list[RowResult]:
    """A shard on a Dask worker, on that worker's own device (``auto``)."""
    return _process_shard(shard, spec, frames, seed, "", resolve_device("auto"))


def _run_shards(tasks: list[ClipTask], options: ExtractOptions, workers: int,
                shared_gpu: bool, frames_dir: str) -> Iterable[list[RowResult]]:
    """Rows of every task, computed by the workers on the CPU, or, with ``shared_gpu``,
    on this machine's GPU: each worker sends its decoded shard through it as one batch
    while the others decode (shards of up to ``GPU_SHARD`` clips, at least four per
    worker); long whole files' frames go through ``frames_dir`` (not on a cluster)."""
    size = options.shard_size
    extra = ()
    if shared_gpu:
        size = min(GPU_SHARD, max(size, len(tasks) // (4 * workers)))
        extra = ("gpu", 1.0 / workers)
    shards = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    args = (options.spec, options.frames, options.seed)
    yield from run_tasks(_cluster_shard if options.cluster else _process_shard, shards,
                         options.spec, workers, options.cluster,
                         args if options.cluster else (*args, frames_dir, *extra))


def _tasks(plan: list[RowMeta], done: dict) -> list[ClipTask]:
    by_origin: dict[int, ClipTask] = {}
    for i, m in enumerate(plan):
        if i in done:
            continue
        origin = i if m.source < 0 else m.source
        by_origin.setdefault(origin, (m.path, []))[1].append((i, m.augment))
    return [by_origin[k] for k in sorted(by_origin)]


def extract(source: str, out: str, options: ExtractOptions = ExtractOptions(),
            progress: Progress | None = None) -> Summary:
    """Extract the corpus at ``source`` (folder, file or CSV manifest) into store ``out``.

    Raises StoreError (OUT cannot be written, holds another run, ...), ExtractError (a
    worker died; the rows done are kept for ``resume``), CorpusError, ClusterError.
    """
    start = time.perf_counter()
    check_out(out)
    device = run_device(options.device, options.cluster)
    corpus = scan(source)
    plan = plan_rows(corpus.clips, options.augment, options.copies)
    with StoreWriter(out, options.spec, plan, frames=options.frames, resume=options.resume,
                     overwrite=options.overwrite) as writer:
        if writer.complete:
            meta = writer.meta
            return Summary(meta["rows"], meta["ok"], meta["errors"],
                           meta.get("ignored_files", []), time.perf_counter() - start, "",
                           complete=True, notes=meta.get("unlabelled_files", []))
        workers = _run(writer, plan, corpus, device, options, progress)
    where = f"{workers} CPU worker process{'es' if workers > 1 else ''}"
    if options.cluster:
        where = f"Dask cluster {options.cluster}"
    elif device == "gpu":
        where = f"{describe('gpu')} shared by {where}"
    ok = sum(1 for e in writer.done.values() if not e["error"])
    return Summary(len(plan), ok, len(plan) - ok, corpus.ignored,
                   time.perf_counter() - start, where, changed=writer.changed,
                   notes=corpus.notes)


def _run(writer: StoreWriter, plan: list[RowMeta], corpus, device: str,
         options: ExtractOptions, progress: Progress | None) -> int:
    """Compute every row the writer lacks and finish the store; returns the number of
    worker processes."""
    tasks = _tasks(plan, writer.done)
    counts = {"ok": sum(1 for e in writer.done.values() if not e["error"])}
    counts["err"] = len(writer.done) - counts["ok"]

    def record(results: list[RowResult]) -> None:
        for res in results:
            writer.write(res)
        writer.flush()
        for res in results:  # the writer may have made a row an error (non-finite values)
            counts["err" if writer.done[res.row]["error"] else "ok"] += 1
        if progress:
            progress(counts["ok"] + counts["err"], len(plan), counts["ok"], counts["err"])

    shared_gpu = device == "gpu" and not options.cluster  # a cluster picks per worker
    workers = worker_count(options.workers, len(tasks), gpu_processes() if shared_gpu else None)
    try:
        for results in _run_shards(tasks, options, workers, shared_gpu,
                                   long_frames_dir(writer.out)):
            record(results)
    except BrokenProcessPool:
        raise ExtractError(_stopped(writer, plan, "a worker process died (killed by the "
                                    "system, out of memory?)")) from None
    except Exception as err:
        if type(err).__name__ != "KilledWorker":  # Dask gave up on a task's workers
            raise
        raise ExtractError(_stopped(writer, plan, f"Dask workers died: {one_line(err)}")
                           ) from None
    writer.finish({"ignored_files": corpus.ignored, "unlabelled_files": corpus.notes})
    return workers


def _stopped(writer: StoreWriter, plan: list[RowMeta], why: str) -> str:
    return (f"{why}; {len(writer.done)} of {len(plan)} rows are kept in "
            f"{writer.paths['journal']}: continue with --resume")
