"""Speaker turns on mono mixes of the call archive: how often a window's voice is right.

    python bench/turns_bench.py --model DIR [--archive /tmp/serfast-calls]

Each stereo call of bench/make_call_archive.py is mixed down to one channel (the mean of
agent and customer, 8 kHz float WAV in a temporary folder) and labelled with
``WindowOptions(turns=True)``. A window's true speaker is the channel whose utterances
(truth.csv) overlap it most; windows over no utterance, or over both speakers' for more
than a quarter of the window each, are counted apart. Per call, voices A/B are matched to
agent/customer the way that agrees best (the names carry no meaning); the share of right
windows is given over all windows with one clear speaker and over all windows.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections import defaultdict

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from serfast.calls.channel import WindowOptions, label_channel  # noqa: E402
from serfast.model.saved import load_predictor  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--archive", default=os.path.join(tempfile.gettempdir(), "serfast-calls"))
    args = p.parse_args()
    truth: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    with open(os.path.join(args.archive, "truth.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            truth[(r["file"], int(r["channel"]))].append((float(r["start"]), float(r["end"])))
    predictor = load_predictor(args.model)
    files = sorted(f for f in os.listdir(args.archive) if f.endswith(".wav"))
    right = clear = total = mixed = silent = 0
    per_call = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            y, sr = sf.read(os.path.join(args.archive, f), dtype="float32")
            mono = os.path.join(tmp, f)
            sf.write(mono, y.mean(axis=1), sr, subtype="FLOAT")
            res = label_channel(mono, 0, predictor, WindowOptions(turns=True))
            truth_of = []
            for a, b in zip(res.starts, res.ends):
                o = [sum(max(0.0, min(b, e) - max(a, s)) for s, e in truth[(f, c)])
                     for c in (0, 1)]
                if max(o) == 0:
                    truth_of.append(-1)
                    silent += 1
                elif min(o) > 0.25 * (b - a):
                    truth_of.append(-2)
                    mixed += 1
                else:
                    truth_of.append(int(np.argmax(o)))
            t = np.array(truth_of)
            keep = t >= 0
            agree = max(int((res.speakers[keep] == t[keep]).sum()),
                        int((res.speakers[keep] == 1 - t[keep]).sum()))
            right += agree
            clear += int(keep.sum())
            total += len(t)
            per_call.append(agree / max(1, keep.sum()))
    print(f"{len(files)} mono mixes, {total} windows: {clear} with one clear speaker, "
          f"{mixed} over both, {silent} over no utterance")
    print(f"voice right in {right / max(1, clear):.1%} of the clear windows "
          f"(per call: median {np.median(per_call):.1%}, worst {min(per_call):.1%})")


if __name__ == "__main__":
    main()
