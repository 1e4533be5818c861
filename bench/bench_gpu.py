"""Benchmark: the GPU backend against the CPU engine, measured in the same run.

  1. feature computation alone on decoded 2.5-s clips (host arrays in, host rows out):
     the GPU (``compute_batch_xp`` on CuPy, batches of ``--batch`` clips) against the CPU
     engine on every core and on one core, and the librosa reference loop on a few clips;
     targets: 50,000 clips/s on one H100, about 1,000x librosa;
  2. end to end: CPU worker processes decode and resample, the parent sends batches
     through the GPU while they keep decoding; against the same workers running the CPU
     engine themselves. Target: 5,000 clips/s.

Without a usable CUDA GPU it prints "needs a CUDA GPU (...)" and exits 0.

    python bench/bench_gpu.py [--corpus ../shared/corpora/ravdess] [--clips 50000]
                              [--record bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from serfast.audio import load_clip
from serfast.demo import STYLES, synth_clip
from serfast.device import describe, gpu_problem
from serfast.features import compute_batch
from serfast.spec import FeatureSpec

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "ravdess"
SPEC = FeatureSpec()
SHARD = 32


def _one_core() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _decode(files: list[str]) -> list[np.ndarray]:
    return [load_clip(f, SPEC) for f in files]


_HELD: list[np.ndarray] = []


def _hold(clips: list[np.ndarray]) -> None:
    """Worker initializer: keep decoded clips here so timed tasks ship only indices."""
    _one_core()
    _HELD[:] = clips


def _features(span: tuple[int, int]) -> int:
    """CPU engine on held clips ``start..stop`` (taken cyclically); returns the count."""
    start, stop = span
    clips = [_HELD[i % len(_HELD)] for i in range(start, stop)]
    return len(compute_batch(clips, SPEC).values)


def _decode_and_features(files: list[str]) -> np.ndarray:
    return compute_batch(_decode(files), SPEC).values


def shards(items: list, size: int = SHARD) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def rate(fn, n: int, repeat: int) -> float:
    """Median clips/s of ``fn()`` processing ``n`` clips."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def gpu_features(clips: list[np.ndarray], batch: int) -> None:
    import cupy

    from serfast.kernels_gpu import compute_batch_xp

    for part in shards(clips, batch):
        compute_batch_xp(part, SPEC, xp=cupy)


def decoded_clips(files: list[str], pool, n_synthetic: int) -> list[np.ndarray]:
    """The corpus's files decoded on every core, or synthetic 2.5-s clips without one."""
    if files:
        return [y for part in pool.map(_decode, shards(files)) for y in part]
    emotions = list(STYLES)
    return [synth_clip(emotions[i % 6], i % 24 + 1, i, seconds=SPEC.duration)
            for i in range(n_synthetic)]


def end_to_end_gpu(files: list[str], pool, batch: int) -> None:
    """Workers decode shards; the parent batches whatever has arrived through the GPU."""
    import cupy

    from serfast.kernels_gpu import compute_batch_xp

    waiting: list[np.ndarray] = []
    for part in pool.map(_decode, shards(files)):
        waiting.extend(part)
        if len(waiting) >= batch:
            compute_batch_xp(waiting, SPEC, xp=cupy)
            waiting = []
    if waiting:
        compute_batch_xp(waiting, SPEC, xp=cupy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clips", type=int, default=50_000, help="clips for the GPU runs")
    ap.add_argument("--cpu-clips", type=int, default=2_000, help="clips for the CPU runs")
    ap.add_argument("--batch", type=int, default=8_192, help="clips per GPU call")
    ap.add_argument("--passes", type=int, default=4, help="end to end: passes over the files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--record", help="append the results as Markdown to this file")
    args = ap.parse_args()
    problem = gpu_problem()
    if problem is not None:
        print(f"needs a CUDA GPU ({problem})")
        return
    cores = os.cpu_count() or 1
    files = sorted(str(p) for p in Path(args.corpus).rglob("*")
                   if p.suffix.lower() in (".wav", ".flac"))
    lines = [f"{describe('gpu')}, {cores} CPU cores, "
             f"{len(files) or 'no'} files from {args.corpus}, median of {args.repeat}"]
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn"),
                             initializer=_one_core) as pool:
        decoded = decoded_clips(files, pool, 240)
        gpu_set = [decoded[i % len(decoded)] for i in range(args.clips)]
        gpu_features(gpu_set[:args.batch], args.batch)  # compile, plan cuFFT, fill the pool
        gpu = rate(lambda: gpu_features(gpu_set, args.batch), len(gpu_set), args.repeat)
        spans = [(i, min(i + SHARD, args.cpu_clips)) for i in range(0, args.cpu_clips, SHARD)]
        with ProcessPoolExecutor(cores, mp_context=get_context("spawn"), initializer=_hold,
                                 initargs=(decoded[:256],)) as held:
            list(held.map(_features, spans[:cores]))  # warm every worker
            cpu_all = rate(lambda: list(held.map(_features, spans)), args.cpu_clips,
                           args.repeat)
        _one_core()
        one = gpu_set[:max(1, args.cpu_clips // 10)]
        compute_batch(one[:1], SPEC)  # load the compiled kernels in this process
        cpu_one = rate(lambda: [compute_batch([y], SPEC) for y in one], len(one), args.repeat)
        lines.append(f"features alone: GPU {gpu:10.0f} clips/s | CPU all cores "
                     f"{cpu_all:8.0f} clips/s ({gpu / cpu_all:6.1f}x) | CPU one core "
                     f"{cpu_one:6.0f} clips/s ({gpu / cpu_one:7.1f}x)")
        lines.append(librosa_line(decoded[:10], gpu))
        if files:
            work = files * args.passes
            e2e_gpu = rate(lambda: end_to_end_gpu(work, pool, args.batch), len(work),
                           args.repeat)
            e2e_cpu = rate(lambda: list(pool.map(_decode_and_features, shards(work))),
                           len(work), args.repeat)
            lines.append(f"end to end ({len(work)} clips, decoding on {cores} cores): GPU "
                         f"{e2e_gpu:8.0f} clips/s | CPU {e2e_cpu:8.0f} clips/s "
                         f"({e2e_gpu / e2e_cpu:5.1f}x)")
    print("\n".join(lines))
    if args.record:
        with open(args.record, "a") as fh:
            fh.write(f"\n## bench_gpu.py, {datetime.date.today()}\n\n"
                     + "".join(f"- {line}\n" for line in lines))


def librosa_line(clips: list[np.ndarray], gpu: float) -> str:
    """clips/s of the librosa reference loop on a few clips, and the GPU's ratio to it."""
    import warnings

    from serfast.reference import reference_features

    warnings.simplefilter("ignore")
    reference_features(clips[0], SPEC)
    ref = rate(lambda: [reference_features(y, SPEC) for y in clips], len(clips), 1)
    return f"librosa reference loop, one core: {ref:6.1f} clips/s (GPU {gpu / ref:7.0f}x)"


if __name__ == "__main__":
    main()
