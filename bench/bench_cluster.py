"""Benchmark: the same extract / predict run locally and on a Dask cluster.

Times a plain local run (all cores) against ``--cluster local:N`` (or any scheduler
address) on the same input, in one run, and prints throughput and the cluster's overhead.
Outputs are compared too: a cluster run must write the same store / labels.

    python bench/bench_cluster.py [--corpus ../shared/corpora/ravdess] [--clips 600]
        [--cluster local:2] [--model DIR --archive DIR]

On a real cluster: start a scheduler (``dask scheduler``) and workers (``dask worker
tcp://host:8786 --nthreads 1 --nworkers N``; ``dask-cuda-worker`` for one worker per GPU)
on machines that can read the corpus paths, then pass ``--cluster tcp://host:8786``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "ravdess"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def serfast(*args: str) -> list[str]:
    return [sys.executable, "-m", "serfast_cli", *args, "--quiet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--cluster", default="local:2")
    ap.add_argument("--model", help="a trained model folder, to benchmark predict too")
    ap.add_argument("--archive", help="a call archive (bench/make_call_archive.py)")
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.corpus).rglob("*")
                   if p.suffix.lower() in (".wav", ".flac"))[: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        manifest = os.path.join(tmp, "clips.csv")
        Path(manifest).write_text("path\n" + "\n".join(files) + "\n")
        crop = ("--features", "seed", "--offset", "0.6", "--duration", "2.5")
        local = timed(serfast("extract", manifest, os.path.join(tmp, "local.npy"), *crop))
        dask = timed(serfast("extract", manifest, os.path.join(tmp, "dask.npy"), *crop,
                             "--cluster", args.cluster))
        same = filecmp.cmp(os.path.join(tmp, "local.npy"), os.path.join(tmp, "dask.npy"),
                           shallow=False)
        print(f"extract {len(files)} clips: local {len(files) / local:7.1f} clips/s | "
              f"{args.cluster} {len(files) / dask:7.1f} clips/s | overhead "
              f"{100 * (dask / local - 1):+.0f} % | identical store: {same}")
        if args.model and args.archive:
            outs = [os.path.join(tmp, k, "labels.csv") for k in ("local", "dask")]
            for out in outs:
                os.makedirs(os.path.dirname(out))
            local = timed(serfast("predict", args.archive, "--model", args.model,
                                  "--out", outs[0]))
            dask = timed(serfast("predict", args.archive, "--model", args.model,
                                 "--out", outs[1], "--cluster", args.cluster))
            same = filecmp.cmp(*outs, shallow=False)
            print(f"predict {args.archive}: local {local:.1f} s | {args.cluster} {dask:.1f} s"
                  f" | overhead {100 * (dask / local - 1):+.0f} % | identical labels: {same}")


if __name__ == "__main__":
    main()
