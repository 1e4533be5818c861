"""Size and opening time of the archive report of a synthetic 1,000-call archive.

Writes the CSVs ``serfast predict`` would write for CALLS stereo calls of MINUTES minutes
(agent and customer take turns of 3-15 s with pauses, windows of 2.5 s every 1.25 s over
speech, emotions drifting from turn to turn; kept and reused when OUT_DIR has them), builds
the report, and opens it REPEATS times in headless Chromium. Quoted, as medians: the page's
own time from navigation to its DOM being built (``data-built-ms``), and Chromium's wall
time to dump the DOM and to paint a screenshot, each next to an empty page's (Chromium's
own start-up).

    python bench/bench_report.py OUT_DIR [--calls 1000] [--minutes 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from serfast.calls.html_report import write_report  # noqa: E402
from serfast.calls.labels import label_fields, summary_fields  # noqa: E402
from serfast.calls.summary import summarize  # noqa: E402

LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
WINDOW, HOP = 2.5, 1.25


def synthetic_channel(rng, seconds: float, turns: list[tuple[float, float]]):
    """Windows over ``turns`` with probabilities that drift: starts, ends, probs, regions."""
    starts, ends, probs = [], [], []
    mood = rng.dirichlet(np.ones(len(LABELS)) * 0.7)
    for a, b in turns:
        mood = 0.6 * mood + 0.4 * rng.dirichlet(np.ones(len(LABELS)) * 0.5)
        t = a
        while True:
            starts.append(t)
            ends.append(min(t + WINDOW, seconds))
            probs.append(rng.dirichlet(mood * 20 + 0.1))
            if t + WINDOW >= b:
                break
            t += HOP
    return np.array(starts), np.array(ends), np.array(probs), turns


def write_results(folder: str, calls: int, minutes: float, seed: int = 0) -> None:
    """labels.csv and summary.csv of a synthetic archive in ``folder``."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, "labels.csv")
    with open(out, "w", newline="") as lf, \
            open(os.path.join(folder, "summary.csv"), "w", newline="") as sf:
        lw, sw = csv.writer(lf), csv.writer(sf)
        lw.writerow(label_fields(LABELS))
        sw.writerow(summary_fields(LABELS))
        for i in range(calls):
            path = os.path.join(folder, "calls", f"call-{i:05d}.wav")
            seconds = minutes * 60 * rng.uniform(0.6, 1.4)
            turns: list[list] = [[], []]
            t, who = rng.uniform(0.5, 2), 0
            while t < seconds - 4:
                length = min(rng.uniform(3, 15), seconds - t)
                turns[who].append((t, t + length))
                t += length + rng.uniform(0.3, 2.0)
                who = 1 - who if rng.random() < 0.8 else who
            for ch in (0, 1):
                s, e, p, regions = synthetic_channel(rng, seconds, turns[ch])
                top = p.argmax(axis=1)
                lw.writerows([path, ch, f"{a:.3f}", f"{b:.3f}", LABELS[k], f"{q[k]:.4f}"]
                             + [f"{v:.4f}" for v in q] + [""]
                             for a, b, k, q in zip(s, e, top, p))
                m = summarize(s, e, p, regions, LABELS, seconds)
                neg = ([f"{m.negative_start:.2f}", f"{m.negative_end:.2f}",
                        f"{m.negative_score:.4f}"] if m.negative_start is not None
                       else ["", "", ""])
                sw.writerow([path, ch, f"{seconds:.3f}", f"{m.speech_seconds:.3f}",
                             f"{m.uncertain_seconds:.3f}", m.windows, m.dominant]
                            + [f"{m.shares[x]:.4f}" for x in LABELS]
                            + neg + [""])


def open_page(chromium: str, page: str, shot: str = "") -> tuple[float, int | None]:
    """Chromium's wall time (s) to load ``page`` and dump its DOM (or, with ``shot``,
    to lay it out and paint a 1280x1600 screenshot there); the page's build ms."""
    with tempfile.TemporaryDirectory() as profile:
        start = time.perf_counter()
        action = [f"--screenshot={shot}", "--window-size=1280,1600"] if shot else ["--dump-dom"]
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              "--disable-background-networking", "--disable-component-update",
                              "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                              *action, "file://" + os.path.abspath(page)],
                             capture_output=True, text=True, timeout=120).stdout
        wall = time.perf_counter() - start
    found = re.search(r'data-built-ms="(\d+)"', dom)
    return wall, int(found.group(1)) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    labels = os.path.join(args.out, "labels.csv")
    made = "reused"
    if not os.path.exists(labels):
        start = time.perf_counter()
        write_results(args.out, args.calls, args.minutes)
        made = f"written in {time.perf_counter() - start:.1f} s"
    print(f"results: {os.path.getsize(labels) / 1e6:.1f} MB labels.csv, {made}")
    page = os.path.join(args.out, "report.html")
    info = write_report(labels, page)
    print(f"report: {info.calls} calls, {info.windows} windows, {info.bytes / 1e6:.2f} MB, "
          f"built in {info.seconds:.1f} s")
    if not chromium:
        print("no chromium on PATH: opening time not measured")
        return
    blank = os.path.join(args.out, "blank.html")
    with open(blank, "w") as fh:
        fh.write("<!DOCTYPE html><html><body></body></html>")
    shot = os.path.join(args.out, "shot.png")
    med = lambda xs: statistics.median(xs)  # noqa: E731
    for _ in range(2):  # warm the disk cache and Chromium's files
        open_page(chromium, page)
    runs = [open_page(chromium, page) for _ in range(args.repeats)]
    empty = [open_page(chromium, blank)[0] for _ in range(args.repeats)]
    shots = [open_page(chromium, page, shot)[0] for _ in range(args.repeats)]
    empty_shots = [open_page(chromium, blank, shot)[0] for _ in range(args.repeats)]
    built = [ms for _, ms in runs if ms is not None]
    print(f"opened {args.repeats}x: page built after median {med(built):.0f} ms "
          f"(range {min(built)}-{max(built)}); chromium wall, median: dump-dom "
          f"{med(w for w, _ in runs):.2f} s (empty page {med(empty):.2f} s), screenshot "
          f"{med(shots):.2f} s (empty page {med(empty_shots):.2f} s)")


if __name__ == "__main__":
    main()
