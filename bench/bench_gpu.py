"""Benchmark: the GPU backend against the CPU engine, measured in the same run.

  1. feature computation alone on decoded 2.5-s clips, host arrays in and host rows out
     (``compute_batch_xp`` on CuPy, ``--batch`` clips per call), against the CPU engine on
     every core and on one core, and the librosa reference loop on a few clips. Target:
     50,000 clips/s on one H100, about 1,000x librosa. Where the time goes: staging into
     pinned memory, the upload, and the kernels of one chunk already on the device;
  2. decoding alone (soundfile + soxr, what the GPU cannot take over) in one process and
     in one per core, to show how the CPU side scales;
  3. end to end: ``serfast.extract`` over the corpus's files repeated ``--passes`` times
     (every core decodes; the workers share the GPU) against the same run on the CPU.
     Target: 5,000 clips/s. Both the whole run (worker start-up included) and the steady
     rate after the first tenth of the rows are printed; then the same clips through the
     alternative design, decoding threads and the GPU in one process.

Without a usable CUDA GPU it prints "needs a CUDA GPU (...)" and exits 0.

    python bench/bench_gpu.py [--corpus ../shared/corpora/ravdess] [--clips 50000]
                              [--record bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from serfast.io.audio import load_clip
from serfast.demo import STYLES, synth_clip
from serfast.features.device import describe, gpu_problem
from serfast.extract import ExtractOptions, extract
from serfast.features.cpu import compute_batch
from serfast.features.spec import FeatureSpec
from serfast.io.store import open_store

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
    """Worker initializer, as extract's: one thread, freed memory kept mapped; and keep
    decoded clips here so timed tasks ship only indices."""
    from serfast.malloc import reuse_freed_memory

    _one_core()
    reuse_freed_memory()
    _HELD[:] = clips


def _features(span: tuple[int, int]) -> int:
    """CPU engine on held clips ``start..stop`` (taken cyclically), one clip per call as
    ``serfast extract`` computes them; returns the count."""
    start, stop = span
    for i in range(start, stop):
        compute_batch([_HELD[i % len(_HELD)]], SPEC)
    return stop - start


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


def gpu_features(clips: list[np.ndarray], batch: int, threads: int | None = None) -> None:
    import cupy

    from serfast.features.gpu import compute_batch_xp

    for part in shards(clips, batch):
        compute_batch_xp(part, SPEC, xp=cupy, staging_threads=threads)


def stage_breakdown(clips: list[np.ndarray], repeat: int) -> str:
    """clips/s of each step for one chunk of ``clips`` (equal lengths): staging into
    pinned memory, the upload, and each group of kernels on the device."""
    import cupy
    import cupyx

    from serfast.features import gpu as k
    from serfast.features.gpu_transfer import STAGING_THREADS, stage

    lengths = np.array([len(c) for c in clips])
    rows = np.arange(len(clips))
    banks = k.device_banks(SPEC, cupy)
    host = stage(rows, clips, lengths, cupyx.empty_pinned, STAGING_THREADS)
    y = cupy.empty(host.shape, cupy.float32)
    y.set(host)
    n = cupy.asarray(lengths)
    t = k.n_frames(y.shape[1], SPEC)
    mag = k._stft_magnitude(y, t, SPEC, banks, cupy)

    def synced(fn):
        def run():
            fn()
            cupy.cuda.Device().synchronize()
        return run

    steps = {
        "stage": lambda: stage(rows, clips, lengths, cupyx.empty_pinned, STAGING_THREADS),
        "upload": lambda: y.set(host),
        "stft": lambda: k._stft_magnitude(y, t, SPEC, banks, cupy),
        "tuning": lambda: k._tuning_indices(mag, SPEC, banks.edges, cupy),
        "zcr+rms": lambda: k.frame_time_fused(y, n, t, SPEC, cupy),
        "moments": lambda: k.moments_fused(y, n, cupy),
        "all kernels": lambda: k._bucket_features(y, n, SPEC, banks, cupy, True, False),
    }
    for fn in steps.values():
        synced(fn)()  # compile and plan
    parts = [f"{name} {rate(synced(fn), len(clips), repeat):,.0f}"
             for name, fn in steps.items()]
    return f"one chunk of {len(clips)} clips, clips/s per step: " + ", ".join(parts)


def staging_threads_line(clips: list[np.ndarray], batch: int, repeat: int) -> str:
    """Features alone with 1, 2, 4 and 8 threads staging chunks into pinned memory."""
    rates = [f"{threads}: "
             f"{rate(lambda t=threads: gpu_features(clips, batch, t), len(clips), repeat):,.0f}"
             for threads in (1, 2, 4, 8)]
    return f"features alone, GPU, clips/s by staging threads: {', '.join(rates)}"


def end_to_end_threads(files: list[str], threads: int, batch: int) -> None:
    """Decode ``files`` in threads of this process (libsndfile and soxr release the GIL)
    and send every ``batch`` decoded clips through the GPU: one CUDA context, no
    pickling; the design to compare extract's worker processes with."""
    import cupy

    from serfast.features.gpu import compute_batch_xp

    waiting: list[np.ndarray] = []
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(_decode, shards(files)):
            waiting += part
            if len(waiting) >= batch:
                compute_batch_xp(waiting, SPEC, xp=cupy)
                waiting = []
    if waiting:
        compute_batch_xp(waiting, SPEC, xp=cupy)


def decoded_clips(files: list[str], pool, n_synthetic: int) -> list[np.ndarray]:
    """The corpus's files decoded on every core, or synthetic 2.5-s clips without one."""
    if files:
        return [y for part in pool.map(_decode, shards(files)) for y in part]
    emotions = list(STYLES)
    return [synth_clip(emotions[i % 6], i % 24 + 1, i, seconds=SPEC.duration)
            for i in range(n_synthetic)]


def extract_rates(files: list[str], device: str, tmp: str) -> tuple[float, float]:
    """``serfast.extract`` of ``files`` (a CSV manifest) on ``device`` with every core:
    clips/s over the whole run, and over the rows after the first tenth (the whole run's
    when all rows came back at once)."""
    manifest = os.path.join(tmp, "manifest.csv")
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([["path"]] + [[f] for f in files])
    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    out = os.path.join(tmp, f"{device}{time.perf_counter_ns()}.npy")
    summary = extract(manifest, out, ExtractOptions(device=device),
                      lambda done, total, ok, err: marks.append((time.perf_counter(), done)))
    whole = summary.ok / (time.perf_counter() - start)
    if summary.ok != len(files):
        reasons = {r["error"] for r in open_store(out).rows if r["error"]}
        raise SystemExit(f"{device}: only {summary.ok} of {len(files)} clips extracted: "
                         f"{'; '.join(sorted(reasons)[:3])}")
    t0, n0 = next(m for m in marks if m[1] >= len(files) // 10)
    t1, n1 = marks[-1]
    return whole, ((n1 - n0) / (t1 - t0) if n1 > n0 else whole)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clips", type=int, default=50_000, help="clips for the GPU runs")
    ap.add_argument("--cpu-clips", type=int, default=2_000, help="clips for the CPU runs")
    ap.add_argument("--batch", type=int, default=16_384, help="clips per GPU call")
    ap.add_argument("--passes", type=int, default=10, help="end to end: passes over the files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--record", help="append the results as Markdown to this file")
    args = ap.parse_args()
    problem = gpu_problem()
    if problem is not None:
        print(f"needs a CUDA GPU ({problem})")
        return
    cores = os.cpu_count() or 1
    files = sorted(str(p) for p in Path(args.corpus).resolve().rglob("*")
                   if p.suffix.lower() in (".wav", ".flac"))
    lines = [(f"{describe('gpu')}, {cores} CPU cores, "
              f"{len(files) or 'no'} files from {args.corpus}, median of {args.repeat}")]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    print(lines[0], flush=True)
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn"),
                             initializer=_one_core) as pool:
        decoded = decoded_clips(files, pool, 240)  # also starts every worker
        if files:
            all_cores = rate(lambda: decoded_clips(files, pool, 0), len(files), 1)
            one = files[:60]
            one_core = rate(lambda: _decode(one), len(one), 1)
            with ThreadPoolExecutor(cores) as threads:
                threaded = rate(lambda: list(threads.map(_decode, shards(files))),
                                len(files), 1)
            say(f"decoding (soundfile + soxr): one process {one_core:,.0f} clips/s, "
                f"{cores} processes {all_cores:,.0f} clips/s, {cores} threads of one "
                f"process {threaded:,.0f} clips/s")
    gpu_set = [decoded[i % len(decoded)] for i in range(args.clips)]
    gpu_features(gpu_set[:args.batch], args.batch)  # compile, plan cuFFT, fill the pools
    gpu = rate(lambda: gpu_features(gpu_set, args.batch), len(gpu_set), args.repeat)
    say(f"features alone, GPU: {gpu:,.0f} clips/s ({len(gpu_set)} clips, "
        f"{args.batch} per call)")
    say(staging_threads_line(gpu_set, args.batch, args.repeat))
    say(stage_breakdown(gpu_set[:2048], args.repeat))
    spans = [(i, min(i + SHARD, args.cpu_clips)) for i in range(0, args.cpu_clips, SHARD)]
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn"), initializer=_hold,
                             initargs=(decoded[:256],)) as held:
        list(held.map(_features, spans[:cores]))  # warm every worker
        cpu_all = rate(lambda: list(held.map(_features, spans)), args.cpu_clips, args.repeat)
    _one_core()
    one = gpu_set[:max(1, args.cpu_clips // 10)]
    compute_batch(one[:1], SPEC)  # load the compiled kernels in this process
    cpu_one = rate(lambda: [compute_batch([y], SPEC) for y in one], len(one), args.repeat)
    say(f"features alone, CPU engine: all {cores} cores {cpu_all:,.0f} clips/s (GPU "
        f"{gpu / cpu_all:.1f}x), one core {cpu_one:,.0f} clips/s (GPU {gpu / cpu_one:.0f}x)")
    say(librosa_line(decoded[:10], gpu))
    if files:
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()  # leave the workers the GPU
        work = files * args.passes
        with tempfile.TemporaryDirectory() as tmp:
            rates = {d: extract_rates(work, d, tmp) for d in ("gpu", "cpu")}
        (g_all, g_steady), (c_all, c_steady) = rates["gpu"], rates["cpu"]
        say(f"end to end, serfast extract of {len(work)} clips on {cores} cores: GPU "
            f"{g_all:,.0f} clips/s whole run, {g_steady:,.0f} steady | CPU {c_all:,.0f} "
            f"whole run, {c_steady:,.0f} steady | GPU/CPU {g_all / c_all:.1f}x whole run, "
            f"{g_steady / c_steady:.1f}x steady")
        threaded = rate(lambda: end_to_end_threads(work, cores, args.batch), len(work), 1)
        say(f"end to end, the alternative design: {cores} decoding threads and the GPU in "
            f"one process, {threaded:,.0f} clips/s (no store)")
    if args.record:
        with open(args.record, "a") as fh:
            fh.write(f"\n## bench_gpu.py, {datetime.date.today()}\n\n"
                     + "".join(f"- {line}\n" for line in lines))


def librosa_line(clips: list[np.ndarray], gpu: float) -> str:
    """clips/s of the librosa reference loop on a few clips, and the GPU's ratio to it."""
    import warnings

    from serfast.features.reference import reference_features

    warnings.simplefilter("ignore")
    reference_features(clips[0], SPEC)
    ref = rate(lambda: [reference_features(y, SPEC) for y in clips], len(clips), 1)
    return f"librosa reference loop, one core: {ref:6.1f} clips/s (GPU {gpu / ref:,.0f}x)"


if __name__ == "__main__":
    main()
