"""The extraction pipeline: corpus -> audio -> features -> store, on all cores.

Work is shipped to worker processes in shards of clips; each worker decodes a clip once,
makes its augmented copies, computes features, and sends rows back; the parent writes
them into the store as they arrive (see :mod:`serfast.store` for atomicity and resume).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Iterable

from threadpoolctl import threadpool_limits

from .audio import AudioError, load_clip
from .augment import AUGMENTATIONS, augment
from .corpus import Clip, scan
from .features import compute_batch
from .filterbanks import filter_banks, install_filter_banks
from .spec import FeatureSpec
from .store import RowMeta, RowResult, StoreWriter

#: A task: one clip's path and its rows as (row index, augmentation or "").
ClipTask = tuple[str, list[tuple[int, str]]]
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
    shard_size: int = 16
    cluster: str = ""  # Dask scheduler address or local:N; "" = this machine


@dataclass
class Summary:
    """What a run did; ``ok == 0`` means nothing could be extracted."""

    rows: int
    ok: int
    errors: int
    ignored: list[str]
    seconds: float
    where: str  # e.g. "2 CPU worker processes", "Dask cluster local:2"


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


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: " + " ".join(str(err).split())


def process_clip(task: ClipTask, spec: FeatureSpec, frames: bool, seed: int) -> list[RowResult]:
    """Decode one clip once and compute every row planned for it."""
    path, rows = task
    try:
        y = load_clip(path, spec)
    except AudioError as err:
        return [RowResult(r, error=str(err)) for r, _ in rows]
    except Exception as err:  # noqa: BLE001 - a bad file must never stop the run
        return [RowResult(r, error=f"cannot decode: {_one_line(err)}") for r, _ in rows]
    results = []
    for r, kind in rows:
        try:
            signal = augment(kind, y, spec.sr, seed, r) if kind else y
            batch = compute_batch([signal], spec, frames=frames)
            results.append(RowResult(r, batch.values[0], duration=len(signal) / spec.sr,
                                     frames=batch.frames[0] if frames else None))
        except Exception as err:  # noqa: BLE001
            results.append(RowResult(r, error=f"feature error: {_one_line(err)}"))
    return results


def _process_shard(shard: list[ClipTask], spec: FeatureSpec, frames: bool,
                   seed: int) -> list[RowResult]:
    return [res for task in shard for res in process_clip(task, spec, frames, seed)]


def _init_worker(spec: FeatureSpec, banks) -> None:
    threadpool_limits(1)
    install_filter_banks(spec, banks)


def _cluster_shard(shard: list[ClipTask], banks, spec: FeatureSpec, frames: bool,
                   seed: int) -> list[RowResult]:
    _init_worker(spec, banks)
    return _process_shard(shard, spec, frames, seed)


def _run_shards(shards: list[list[ClipTask]], options: ExtractOptions,
                workers: int) -> Iterable[list[RowResult]]:
    """Results of every shard, in completion order, from wherever the work runs."""
    args = (options.spec, options.frames, options.seed)
    if options.cluster:
        from .cluster import connect, map_shards

        with connect(options.cluster) as client:
            yield from map_shards(client, _cluster_shard, shards, args,
                                  broadcast=(filter_banks(options.spec),))
    elif workers == 1:
        with threadpool_limits(1):
            for shard in shards:
                yield _process_shard(shard, *args)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(options.spec, filter_banks(options.spec))) as pool:
            pending = set()
            for shard in shards:
                pending.add(pool.submit(_process_shard, shard, *args))
                if len(pending) >= 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in finished)
            yield from (f.result() for f in pending)


def _tasks(plan: list[RowMeta], done: dict) -> list[ClipTask]:
    by_path: dict[int, ClipTask] = {}
    for i, m in enumerate(plan):
        if i in done:
            continue
        origin = i if m.source < 0 else m.source
        by_path.setdefault(origin, (m.path, []))[1].append((i, m.augment))
    return [by_path[k] for k in sorted(by_path)]


def extract(source: str, out: str, options: ExtractOptions = ExtractOptions(),
            progress: Progress | None = None) -> Summary:
    """Extract the corpus at ``source`` (folder, file or CSV manifest) into store ``out``."""
    start = time.perf_counter()
    corpus = scan(source)
    plan = plan_rows(corpus.clips, options.augment, options.copies)
    writer = StoreWriter(out, options.spec, plan, frames=options.frames,
                         resume=options.resume)
    tasks = _tasks(plan, writer.done)
    counts = {"ok": sum(1 for e in writer.done.values() if not e["error"])}
    counts["err"] = len(writer.done) - counts["ok"]

    def record(results: list[RowResult]) -> None:
        for res in results:
            writer.write(res)
            counts["err" if res.error else "ok"] += 1
        writer.flush()
        if progress:
            progress(counts["ok"] + counts["err"], len(plan), counts["ok"], counts["err"])

    workers = options.workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(tasks) or 1))
    shards = [tasks[i:i + options.shard_size] for i in range(0, len(tasks), options.shard_size)]
    for results in _run_shards(shards, options, workers):
        record(results)
    writer.finish({"ignored_files": corpus.ignored})
    where = (f"Dask cluster {options.cluster}" if options.cluster
             else f"{workers} CPU worker process{'es' if workers > 1 else ''}")
    return Summary(len(plan), counts["ok"], counts["err"], corpus.ignored,
                   time.perf_counter() - start, where)
