"""Reproduce the RAVDESS numbers of bench/RESULTS.md.

    python bench/train_ravdess.py [--corpus ../shared/corpora/ravdess] [--work /tmp/serfast-bench]
                                  [--compare]

Extracts the store (with --frames) if it is missing, cross-validates the default model
on seed6 and on all eight emotions (5 folds of 4 whole actors, seed 0), and times a saved
model predicting 1,000 clips from the store (load included). With --compare it also
extracts the augmented store (``--augment noise,pitch --copies 1``) and runs
``train --compare`` on it for seed6: baselines and networks without and with the
augmented rows, under the same folds (the table of bench/RESULTS.md).
"""

import argparse
import os
import time

import numpy as np

from serfast.extract import ExtractOptions, extract
from serfast.model.saved import load_predictor
from serfast.model.report import compare_table
from serfast.io.store import open_store
from serfast.model.train import TrainOptions, train


def time_prediction(model_dir: str, store_path: str, n: int = 1000) -> float:
    """Seconds to load ``model_dir`` and predict ``n`` clips of the store."""
    start = time.perf_counter()
    predictor = load_predictor(model_dir)
    store = open_store(store_path)
    rows = np.arange(n) % len(store.rows)
    frames = [store.row_frames(i) for i in rows] if predictor.needs_frames else None
    groups = np.array([store.rows[i]["speaker"] for i in rows])
    predictor.predict_proba(store.values[rows], frames, groups)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="/work/shared/corpora/ravdess")
    parser.add_argument("--work", default="/tmp/serfast-bench")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    store = os.path.join(args.work, "ravdess.npy")
    if not os.path.exists(store):
        extract(args.corpus, store, ExtractOptions(frames=True))
    for classes in ("seed6", "all"):
        model_dir = os.path.join(args.work, f"model-{classes}")
        report = train([store], model_dir, TrainOptions(classes=classes), progress=print)
        s = report["cv"]["summary"]
        print(f"{classes}: accuracy {100 * s['accuracy']['mean']:.1f} ± "
              f"{100 * s['accuracy']['std']:.1f} %, UAR {s['uar']['mean']:.3f} ± "
              f"{s['uar']['std']:.3f}, CV {report['cv_seconds']:.0f} s, "
              f"total {report['seconds']:.0f} s")
        print(f"{classes}: load + predict 1,000 clips: "
              f"{time_prediction(model_dir, store):.2f} s")
    if args.compare:
        aug = os.path.join(args.work, "ravdess_aug.npy")
        if not os.path.exists(aug):
            extract(args.corpus, aug, ExtractOptions(frames=True, augment=("noise", "pitch"),
                                                     copies=1))
        model_dir = os.path.join(args.work, "model-seed6-aug")
        report = train([aug], model_dir, TrainOptions(classes="seed6"),
                       compare_baselines=True, progress=print)
        print("\n".join(compare_table(report["compare"])))
        print(f"compare: {report['compare_seconds']:.0f} s, total {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
