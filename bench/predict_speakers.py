"""Benchmark: `serfast predict` on folders of short clips of speakers the model never heard,
each clip its own speaker (``--speakers channel``, the default) against the clips of a
folder normalised together (``--speakers folder``), all the corpus's clips normalised
together (``--speakers archive``: speakers unknown) and the clips whose voices cluster
together normalised together (``--speakers voice``: speakers unknown).

For each corpus of ``../shared/corpora`` (every folder there holds one speaker): the
shipped model's recipe is trained on the stores of the other five corpora
(``bench/build_default_model.py``'s stores and options, no cross-validation), then
`predict` labels the held-out corpus's folder each way, in one run on the same cores.
A clip's answer is its windows' mean probability, restricted to the classes the corpus
has (as leave-one-corpus-out scores them); a clip with no window of speech counts as
wrong. Prints per-corpus UAR and accuracy, the means, and the wall time of each run.

    python bench/predict_speakers.py [--stores /tmp/serfast-default] [--corpora ../shared/corpora]
                                     [--work /tmp/serfast-speakers] [--only nemo,emoes]
                                     [--modes channel,folder,archive,voice]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import replace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: predict's speaker groups compared: each clip alone, each folder one speaker, all clips
#: of the held-out corpus one group, clusters of voices (the last two: speakers unknown)
MODES = ("channel", "folder", "archive", "voice")
sys.path.insert(0, HERE)
from build_default_model import CORPORA, extract_stores, options  # noqa: E402


def clip_labels(corpus: str) -> dict[str, str]:
    """Absolute path -> canonical label of every labelled clip of a corpus folder (the
    model's classes are kept by the caller)."""
    from serfast.io.corpus import scan

    source = os.path.join(corpus, "manifest.csv")
    return {c.path: c.label for c in scan(source if os.path.exists(source) else corpus).clips
            if c.label}


def score(labels_csv: str, truth: dict[str, str], classes: list[str]) -> dict:
    """UAR and accuracy of each clip's mean window probability, restricted to the classes
    present in ``truth``."""
    sums: dict[str, np.ndarray] = {}
    with open(labels_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["label"]:
                p = np.array([float(row[f"p_{c}"]) for c in classes])
                sums[row["file"]] = sums.get(row["file"], 0) + p
    present = sorted({truth[p] for p in truth}, key=classes.index)
    keep = [classes.index(c) for c in present]
    recalls, hits = [], 0
    for label in present:
        paths = [p for p, t in truth.items() if t == label]
        right = sum(p in sums and present[int(np.argmax(sums[p][keep]))] == label
                    for p in paths)
        recalls.append(right / len(paths))
        hits += right
    return {"uar": float(np.mean(recalls)), "accuracy": hits / len(truth),
            "silent": sum(p not in sums for p in truth)}


def main(argv=None) -> int:
    from serfast.calls.predict import PredictOptions, predict_archive
    from serfast.model.train import SEED6, train

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", default="/tmp/serfast-default")
    ap.add_argument("--corpora", default=os.path.join(HERE, "..", "..", "shared", "corpora"))
    ap.add_argument("--work", default="/tmp/serfast-speakers")
    ap.add_argument("--only", default="", help="comma list of corpora to hold out")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of --speakers modes")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    extract_stores(args.corpora, args.stores, "all", "", embedding=True)
    held_out = args.only.split(",") if args.only else list(CORPORA)
    classes = list(SEED6)
    rows = []
    for corpus in held_out:
        model = os.path.join(args.work, f"without-{corpus}")
        if not os.path.exists(os.path.join(model, "model.json")):
            stores = [os.path.join(args.stores, f"{c}.npy") for c in CORPORA if c != corpus]
            train(stores, model, replace(options(), cv=0))
        folder = os.path.join(args.corpora, corpus)
        truth = {p: t for p, t in clip_labels(folder).items() if t in classes}
        result = {"corpus": corpus, "clips": len(truth)}
        for speakers in modes:
            out = os.path.join(args.work, f"{corpus}-{speakers}.csv")
            for stale in (out, out.replace(".csv", ".summary.csv")):
                if os.path.exists(stale):
                    os.remove(stale)
            start = time.perf_counter()
            predict_archive(list(truth), model, out, PredictOptions(speakers=speakers))
            result[speakers] = {**score(out, truth, classes),
                                "seconds": time.perf_counter() - start}
        rows.append(result)
        print(f"{corpus:8s} {len(truth):5d} clips  " + "  ".join(
            f"--speakers {m}: UAR {result[m]['uar']:.3f} acc {result[m]['accuracy']:.3f} "
            f"({result[m]['seconds']:.1f} s)" for m in modes)
            + f"  clips without speech {result[modes[0]]['silent']}", flush=True)
    for speakers in modes:
        print(f"mean, --speakers {speakers}: UAR "
              f"{np.mean([r[speakers]['uar'] for r in rows]):.3f}, accuracy "
              f"{np.mean([r[speakers]['accuracy'] for r in rows]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
