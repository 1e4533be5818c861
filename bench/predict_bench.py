"""Benchmark of `serfast predict` on a telephone call archive: speed, memory, accuracy.

    python bench/predict_bench.py --model DIR [--archive /tmp/serfast-calls] [--long 120]
                                  [--device gpu] [--no-denoise] [--hop S]
                                  [--speakers voice] [--repeat 3]

1. Builds the archive with bench/make_call_archive.py if it is missing (20 calls of
   3 minutes = 1 hour of stereo 8 kHz µ-law audio, actors 17-20).
2. Runs ``serfast predict`` on it as a user would (a fresh process, end to end) and
   prints the wall time and the real-time factor (audio hours / wall hours), and the peak
   memory of the whole process tree (parent + workers, sampled every 20 ms). In the same
   run, the decoding floor: every channel of every call decoded in 30-s blocks and
   resampled to 22,050 Hz with soxr HQ (``serfast.io.audio.channel_blocks``, nothing
   else), in a fresh process with a spawn pool of as many workers as predict's (every
   core by default); predict's wall time is also given as a multiple of it. Both run
   ``--repeat`` times (3), in turn, and their medians are compared.
   ``--compare LABELS.csv`` prints how far this run's window probabilities are from
   another run's (windows matched by file, channel and start within one frame).
3. Scores utterance-level accuracy: each utterance of truth.csv gets the mean of the
   probabilities of the windows over it (weighted by overlap) and the arg-max label.
   Also: share of utterances with no window (VAD misses) and windows over no utterance.
4. With ``--long M``: one M-minute call, run alone, for the peak memory of a long file.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


def run_predict(args: list[str]) -> tuple[float, int]:
    """Run ``serfast predict ARGS``; returns (wall seconds, peak tree RSS bytes)."""
    cmd = [sys.executable, "-m", "serfast_cli", "predict", *args, "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"serfast predict failed with exit code {proc.returncode}")
    return wall, peak


FLOOR_SCRIPT = """
import os, sys, time
from multiprocessing import get_context
from serfast.io.audio import channel_blocks

def decode(task):
    path, channel = task
    return sum(len(y) for y in channel_blocks(path, channel, 22050, 30.0))

if __name__ == "__main__":
    import soundfile as sf
    folder, workers = sys.argv[1], int(sys.argv[2]) or os.cpu_count()
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".wav"))
    tasks = [(f, c) for f in files for c in range(sf.info(f).channels)]
    with get_context("spawn").Pool(workers) as pool:
        samples = sum(pool.map(decode, tasks, chunksize=1))
    print(samples)
"""


def floor_script(tmp: str) -> str:
    """Write the decoding floor's script into ``tmp`` (spawned workers import it)."""
    script = os.path.join(tmp, "decode_floor.py")
    with open(script, "w") as fh:
        fh.write(FLOOR_SCRIPT)
    return script


def decoding_floor(script: str, folder: str, workers: int) -> float:
    """Wall seconds of a fresh process that decodes and resamples every channel of the
    archive (see the module doc)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, script, folder, str(workers)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def compare_labels(mine: str, other: str) -> str:
    """How this run's window probabilities differ from another run's labels.csv."""
    def windows(path):
        out = {}
        for r in read_csv(path):
            if not r["error"]:
                key = (os.path.basename(r["file"]), r["channel"])
                out.setdefault(key, []).append(
                    (float(r["start"]), np.array([float(r[c]) for c in r if c.startswith("p_")])))
        return out

    a, b = windows(mine), windows(other)
    diffs, same, matched, total = [], 0, 0, 0
    for key, ws in a.items():
        theirs = b.get(key, [])
        starts = np.array([t for t, _ in theirs])
        for t, p in ws:
            total += 1
            if len(starts) == 0:
                continue
            j = int(np.argmin(np.abs(starts - t)))
            if abs(starts[j] - t) > 0.024:  # windows moved onto the frame grid
                continue
            matched += 1
            diffs.append(np.abs(p - theirs[j][1]).max())
            same += int(p.argmax() == theirs[j][1].argmax())
    d = np.array(diffs)
    return (f"{matched} of {total} windows matched; top label the same in "
            f"{same / max(1, matched):.4f}; probability difference median "
            f"{np.median(d) if len(d) else 0:.2e}, max {d.max() if len(d) else 0:.2e}")


def read_csv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def score(labels_csv: str, truth_csv: str) -> dict:
    """Utterance accuracy and VAD coverage of a labels.csv against truth.csv."""
    windows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    rows = read_csv(labels_csv)
    prob_cols = [c for c in rows[0] if c.startswith("p_")] if rows else []
    for r in rows:
        if not r["error"]:
            windows[(os.path.basename(r["file"]), r["channel"])].append(r)
    truth = read_csv(truth_csv)
    by_channel: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    hits = missed = 0
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_actor: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for u in truth:
        key, a, b = (u["file"], u["channel"]), float(u["start"]), float(u["end"])
        by_channel[key].append((a, b))
        acc, total = np.zeros(len(prob_cols)), 0.0
        for w in windows[key]:
            o = min(float(w["end"]), b) - max(float(w["start"]), a)
            if o > 0:
                acc += o * np.array([float(w[c]) for c in prob_cols])
                total += o
        ok = total > 0 and prob_cols[int(acc.argmax())] == "p_" + u["label"]
        missed += total == 0
        hits += ok
        for tally, name in ((per_label, u["label"]), (per_actor, u.get("actor", ""))):
            tally[name][0] += ok
            tally[name][1] += 1
    stray = sum(1 for key, ws in windows.items() for w in ws
                if not any(min(float(w["end"]), b) > max(float(w["start"]), a)
                           for a, b in by_channel[key]))
    n_windows = sum(len(ws) for ws in windows.values())
    return {"utterances": len(truth), "accuracy": hits / len(truth),
            "accuracy_found": hits / max(1, len(truth) - missed), "missed": missed,
            "windows": n_windows, "stray_windows": stray,
            "per_label": {k: v[0] / v[1] for k, v in sorted(per_label.items())},
            "per_actor": {k: v[0] / v[1] for k, v in sorted(per_actor.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--archive", default=os.path.join(tempfile.gettempdir(), "serfast-calls"))
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--long", type=float, default=0, help="Minutes of a long call to run alone.")
    p.add_argument("--device", default="auto", help="serfast predict --device: auto, cpu, gpu.")
    p.add_argument("--no-denoise", action="store_true", help="serfast predict --no-denoise.")
    p.add_argument("--compare", help="Another run's labels.csv to compare windows with.")
    p.add_argument("--keep", help="Copy this run's labels.csv here.")
    p.add_argument("--hop", type=float, default=0,
                   help="serfast predict --hop in seconds (0: predict's default, half the window).")
    p.add_argument("--speakers", default="",
                   help="serfast predict --speakers (default: predict's, each channel alone).")
    p.add_argument("--repeat", type=int, default=3,
                   help="Runs of predict, each followed by one of the floor; medians.")
    args = p.parse_args()
    common = ["--workers", str(args.workers), "--device", args.device,
              "--no-denoise" if args.no_denoise else "--denoise"]
    common += ["--hop", str(args.hop)] if args.hop else []
    common += ["--speakers", args.speakers] if args.speakers else []
    gen = [sys.executable, os.path.join(HERE, "make_call_archive.py")]
    if not os.path.exists(os.path.join(args.archive, "truth.csv")):
        subprocess.run(gen + [args.archive], check=True)
    import soundfile as sf

    wavs = sorted(f for f in os.listdir(args.archive) if f.endswith(".wav"))
    hours = sum(sf.info(os.path.join(args.archive, f)).duration for f in wavs) / 3600
    with tempfile.TemporaryDirectory() as tmp:
        out, script = os.path.join(tmp, "labels.csv"), floor_script(tmp)
        walls, peaks, floors = [], [], []
        for i in range(args.repeat):  # predict and the floor in turn: drift hits both
            wall, peak = run_predict([args.archive, "--model", args.model, "--out",
                                      out if i == 0 else os.path.join(tmp, f"again{i}.csv"),
                                      *common])
            walls.append(wall)
            peaks.append(peak)
            floors.append(decoding_floor(script, args.archive, args.workers))
        wall, floor = float(np.median(walls)), float(np.median(floors))
        print(f"archive: {len(wavs)} stereo calls, {hours:.3f} h of audio")
        print(f"wall {wall:.2f} s (median of {', '.join(f'{w:.2f}' for w in walls)}), "
              f"real-time factor {hours * 3600 / wall:.0f}x, peak memory "
              f"{max(peaks) / 2**20:.0f} MiB (process tree)")
        s = score(out, os.path.join(args.archive, "truth.csv"))
        print(f"utterance accuracy {s['accuracy']:.3f} over {s['utterances']} utterances "
              f"({s['missed']} without a window; {s['accuracy_found']:.3f} of those found); "
              f"{s['windows']} windows, {s['stray_windows']} over no utterance")
        print("per label: " + ", ".join(f"{k} {v:.2f}" for k, v in s["per_label"].items()))
        print(f"decoding floor {floor:.2f} s (median of "
              f"{', '.join(f'{f:.2f}' for f in floors)}); predict = {wall / floor:.2f}x "
              "the floor")
        if args.compare:
            print("against " + args.compare + ": " + compare_labels(out, args.compare))
        if args.keep:
            import shutil

            shutil.copyfile(out, args.keep)
        if args.long:
            folder = os.path.join(tmp, "long")
            subprocess.run(gen + [folder, "--calls", "1", "--minutes", str(args.long),
                                  "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
            wall, peak = run_predict([folder, "--model", args.model, "--out",
                                      os.path.join(tmp, "long.csv"), *common])
            print(f"long call: {args.long:g} min stereo, wall {wall:.2f} s "
                  f"({args.long * 60 / wall:.0f}x), peak memory {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
