"""Energy VAD against Silero VAD on the call archive of bench/make_call_archive.py.

    python bench/vad_compare.py [--archive /tmp/serfast-calls] [--methods energy,silero]
                                [--no-denoise]

Each channel of each call is decoded and noise-reduced as ``serfast predict`` does
(``channel_blocks`` with the default ``NoiseReducer``) and run through each detector.
Against truth.csv (where every utterance is):

* missed: utterances that no region overlaps; half-missed: those with less than half of
  their length inside regions;
* outside: seconds of regions farther than the VAD's padding (+ 0.1 s) from every
  utterance, as a share of all region seconds (hold music and line noise taken for speech);
* speed: seconds the detector took (its push/finish calls only, one core) per hour of
  channel audio.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from serfast.calls.denoise import DenoiseOptions, NoiseReducer  # noqa: E402
from serfast.calls.vad import VadOptions, speech_detector  # noqa: E402
from serfast.io.audio import channel_blocks  # noqa: E402

SR, FRAME = 22050, 512


def regions_of(path: str, channel: int, options: VadOptions, denoise: bool):
    """(regions in seconds, detector seconds, channel seconds)."""
    reducer = (functools.partial(NoiseReducer, options=DenoiseOptions()) if denoise
               else None)
    detector = speech_detector(SR, FRAME, options)
    spent, samples, found = 0.0, 0, []
    for y in channel_blocks(path, channel, SR, 30.0, reducer):
        start = time.perf_counter()
        found += detector.push(y)
        spent += time.perf_counter() - start
        samples += len(y)
    start = time.perf_counter()
    found += detector.finish()
    spent += time.perf_counter() - start
    return [(a / SR, min(b, samples) / SR) for a, b in found], spent, samples / SR


def overlap(a: float, b: float, regions) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in regions)


def score(truth, found, pad: float) -> dict:
    missed = half = 0
    region_s = outside_s = 0.0
    n = 0
    for key, utterances in truth.items():
        regions = found.get(key, [])
        for a, b in utterances:
            n += 1
            covered = overlap(a, b, regions)
            missed += covered == 0
            half += covered < 0.5 * (b - a)
        near = [(a - pad, b + pad) for a, b in utterances]
        for s, e in regions:
            region_s += e - s
            outside_s += (e - s) - overlap(s, e, near)
    return {"utterances": n, "missed": missed, "half": half,
            "outside": outside_s / max(region_s, 1e-9), "region_h": region_s / 3600}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", default=os.path.join(tempfile.gettempdir(), "serfast-calls"))
    p.add_argument("--methods", default="energy,silero")
    p.add_argument("--no-denoise", action="store_true")
    args = p.parse_args()
    truth: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    with open(os.path.join(args.archive, "truth.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            truth[(r["file"], int(r["channel"]))].append((float(r["start"]), float(r["end"])))
    files = sorted(f for f in os.listdir(args.archive) if f.endswith(".wav"))
    print("| VAD | utterances missed | less than half found | region time outside "
          "utterances | speech found | VAD time per hour of channel audio |")
    print("|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        options = VadOptions(method=method)
        found, spent, audio = {}, 0.0, 0.0
        for f in files:
            for channel in (0, 1):
                regions, t, seconds = regions_of(os.path.join(args.archive, f), channel,
                                                 options, not args.no_denoise)
                found[(f, channel)] = regions
                spent += t
                audio += seconds
        s = score(truth, found, options.pad + 0.1)
        print(f"| {method} | {s['missed']} of {s['utterances']} "
              f"({s['missed'] / s['utterances']:.1%}) | {s['half']} "
              f"({s['half'] / s['utterances']:.1%}) | {s['outside']:.1%} | "
              f"{s['region_h'] * 60:.1f} min | {spent / (audio / 3600):.2f} s |", flush=True)


if __name__ == "__main__":
    main()
