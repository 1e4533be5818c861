"""Benchmark: serfast against the librosa reference loop on the same real clips.

Prints clips/s for both and their ratio, medians over ``--repeat`` runs:
  1. end to end, one core: a fresh ``serfast extract --workers 1`` process against a fresh
     process running the librosa loop (load + features), start-up included;
  2. end to end, all cores: ``serfast extract`` (all workers) against the librosa loop
     split over the same number of processes;
  3. feature computation alone, one core, on clips decoded beforehand;
  4. peak memory (max RSS) of serfast on a quarter of the clips and on all of them.

    python bench/bench_extract.py [--corpus ../shared/corpora/ravdess] [--clips 1200]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "ravdess"

LIBROSA_LOOP = """
import sys, warnings
warnings.simplefilter("ignore")
from serfast.features.reference import reference_features, reference_load
for path in open(sys.argv[1]).read().split("\\n"):
    if path:
        reference_features(reference_load(path))
"""


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status:
        sys.exit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss


def librosa_processes(files: list[str], procs: int, tmp: str) -> float:
    """Wall seconds for the librosa loop over ``files`` split across ``procs`` processes."""
    lists = []
    for i in range(procs):
        p = os.path.join(tmp, f"list{i}.txt")
        Path(p).write_text("\n".join(files[i::procs]))
        lists.append(p)
    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", LIBROSA_LOOP, p]) for p in lists]
    if any(c.wait() for c in children):
        sys.exit("librosa loop failed")
    return time.perf_counter() - start


def serfast_run(manifest: str, tmp: str, workers: int) -> tuple[float, int]:
    out = os.path.join(tmp, f"bench{time.perf_counter_ns()}.npy")
    return run([sys.executable, "-m", "serfast_cli", "extract", manifest, out, "--workers",
                str(workers), "--features", "seed", "--offset", "0.6", "--duration", "2.5",
                "--quiet"])


def write_manifest(files: list[str], path: str) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path"])
        w.writerows([f] for f in files)
    return path


FEATURES_LOOP = """
import statistics, sys, time, warnings
warnings.simplefilter("ignore")
from threadpoolctl import threadpool_limits
from serfast.io.audio import load_clip
from serfast.features.cpu import compute_batch
from serfast.features.reference import reference_features
which, repeat = sys.argv[2], int(sys.argv[3])
clips = [load_clip(p) for p in open(sys.argv[1]).read().split("\\n") if p]
fn = (lambda y: reference_features(y)) if which == "librosa" else (lambda y: compute_batch([y]))
rates = []
with threadpool_limits(1):
    fn(clips[0])
    for _ in range(repeat):
        t = time.perf_counter()
        for y in clips:
            fn(y)
        rates.append(len(clips) / (time.perf_counter() - t))
print(statistics.median(rates))
"""


def features_alone(files: list[str], repeat: int, tmp: str) -> tuple[float, float]:
    """Median clips/s of the librosa features and of serfast's kernels on clips decoded
    beforehand, one core, each in a fresh process (the reference on a quarter: it is slow)."""
    rates = []
    for which, subset in (("librosa", files[: max(1, len(files) // 4)]), ("serfast", files)):
        path = os.path.join(tmp, f"features-{which}.txt")
        Path(path).write_text("\n".join(subset))
        out = subprocess.run([sys.executable, "-c", FEATURES_LOOP, path, which, str(repeat)],
                             check=True, capture_output=True, text=True).stdout
        rates.append(float(out.split()[-1]))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clips", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-librosa-e2e", action="store_true",
                    help="only the feature-alone comparison for librosa (faster)")
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.corpus).rglob("*")
                   if p.suffix.lower() in (".wav", ".flac"))[: args.clips]
    if not files:
        sys.exit(f"no clips under {args.corpus}")
    cores = os.cpu_count() or 1
    print(f"{len(files)} clips from {args.corpus}; {cores} cores; median of {args.repeat} runs")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(files, os.path.join(tmp, "clips.csv"))
        quarter = write_manifest(files[: len(files) // 4], os.path.join(tmp, "quarter.csv"))
        serfast_run(quarter, tmp, 1)  # warm the Numba cache and the page cache
        for label, procs in (("one core", 1), (f"all {cores} cores", cores)):
            ours = statistics.median(serfast_run(manifest, tmp, procs)[0]
                                     for _ in range(args.repeat))
            line = f"end to end, {label}: serfast {len(files) / ours:8.1f} clips/s"
            if not args.skip_librosa_e2e:
                ref = statistics.median(librosa_processes(files, procs, tmp)
                                        for _ in range(max(1, args.repeat // 2)))
                line += f" | librosa {len(files) / ref:6.1f} clips/s | ratio {ref / ours:5.1f}x"
            print(line, flush=True)
        ref_rate, our_rate = features_alone(files, args.repeat, tmp)
        print(f"features alone, one core: serfast {our_rate:8.1f} clips/s | librosa "
              f"{ref_rate:6.1f} clips/s | ratio {our_rate / ref_rate:5.1f}x", flush=True)
        # peak memory must not grow with the number of clips (fresh processes each)
        small = serfast_run(quarter, tmp, 1)[1]
        large = serfast_run(manifest, tmp, 1)[1]
        print(f"peak RSS, --workers 1: {len(files) // 4} clips {small / 1024:.0f} MiB, "
              f"{len(files)} clips {large / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
