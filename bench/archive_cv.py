"""Cross-validated call-archive accuracy: every speaker is labelled by a model that never
heard them, on clean clips and in telephone calls.

For each of K folds of whole actors (the same folds as ``serfast train --cv K``), this
trains the fold's model on the other actors' rows of STORE, scores it on the fold's
clean clips (exactly what cross-validation does), builds a telephone call archive from
the fold's actors only (``make_call_archive.py``: 8 kHz µ-law stereo calls, pauses, line
noise, hold music), labels it with ``serfast predict``'s defaults and scores every
utterance. The table compares, fold by fold and pooled, the clean cross-validated
accuracy with the archive's utterance accuracy on the same speakers and models. As in the
clean score, where every actor has 44 clips, each actor weighs the same in a fold's
archive accuracy (calls pair actors at random, so their utterance counts differ); the
plain per-utterance accuracy is printed too.

    serfast extract ../shared/corpora/ravdess rav.npy --frames --augment telephone --copies 3
    python bench/archive_cv.py rav.npy --out /tmp/archive-cv [--calls 4 --minutes 3]

``--reuse`` keeps fold models and archives already in OUT (to try predict settings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import make_call_archive  # noqa: E402
from predict_bench import score  # noqa: E402

from serfast.model.saved import load_predictor, save_model  # noqa: E402
from serfast.calls.predict import PredictOptions, predict_archive  # noqa: E402
from serfast.model.train import (TrainOptions, fit, fold_rows, load_dataset,  # noqa: E402
                           resolve_classes, speaker_folds)


def actor_numbers(speakers) -> str:
    """'ravdess_05' ... -> '5,9,...' for make_call_archive --actors."""
    return ",".join(str(int(s.rsplit("_", 1)[-1])) for s in sorted(speakers))


def run_fold(ds, folds, f: int, args, options: TrainOptions) -> dict:
    fold_dir = os.path.join(args.out, f"fold_{f}")
    model_dir, calls_dir = os.path.join(fold_dir, "model"), os.path.join(fold_dir, "calls")
    train_rows, test_rows = fold_rows(ds, folds, f, augmented=True)
    speakers = sorted(set(ds.speakers[test_rows]))
    start = time.perf_counter()
    if args.reuse and os.path.exists(os.path.join(model_dir, "model.json")):
        predictor = load_predictor(model_dir)
    else:
        fitted = fit(ds, train_rows, options)
        save_model(model_dir, fitted.predictor, fitted.network, fitted.member_weights,
                   {"training": {"rows": int(len(train_rows)), "held_out": speakers}})
        predictor = fitted.predictor
    right = predictor.predict_proba(**ds.subset(test_rows)).argmax(1) == ds.y[test_rows]
    clean = float(right.mean())
    clean_actor = {actor_numbers([s]): float(right[ds.speakers[test_rows] == s].mean())
                   for s in speakers}
    if not (args.reuse and os.path.exists(os.path.join(calls_dir, "truth.csv"))):
        make_call_archive.main([calls_dir, "--corpus", args.corpus, "--calls", str(args.calls),
                                "--minutes", str(args.minutes), "--actors",
                                actor_numbers(speakers), "--seed", str(args.seed + f)])
    labels = os.path.join(fold_dir, "labels.csv")
    for old in (labels, os.path.join(fold_dir, "summary.csv")):
        if os.path.exists(old):
            os.remove(old)
    predict_archive([calls_dir], model_dir, labels, PredictOptions(workers=args.workers))
    archive = score(labels, os.path.join(calls_dir, "truth.csv"))
    return {"fold": f, "speakers": speakers, "clean_clips": int(len(test_rows)),
            "clean_accuracy": clean, "clean_per_actor": clean_actor,
            "utterances": archive["utterances"], "archive_utterances": archive["accuracy"],
            "archive_per_actor": archive["per_actor"],
            # every actor weighs the same, as in the clean score (44 clips each)
            "archive_accuracy": float(np.mean([archive["per_actor"].get(a, np.nan)
                                               for a in clean_actor])),
            "missed": archive["missed"], "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="RAVDESS store extracted with --frames --augment telephone")
    p.add_argument("--out", required=True, help="Folder for fold models, archives, labels.")
    p.add_argument("--corpus", default=make_call_archive.DEFAULT_CORPUS)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--calls", type=int, default=4, help="Calls per fold.")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ensemble", type=int, default=TrainOptions.ensemble,
                   help="Members of each kind (serfast train --ensemble).")
    p.add_argument("--reuse", action="store_true")
    args = p.parse_args(argv)
    options = TrainOptions(cv=args.folds, seed=args.seed, ensemble=args.ensemble)
    ds = load_dataset([args.store], resolve_classes(options.classes), need_frames=True)
    folds = speaker_folds(ds.speakers, args.folds, args.seed)
    results = []
    for f in range(args.folds):
        r = run_fold(ds, folds, f, args, options)
        results.append(r)
        print(f"fold {f}: actors {actor_numbers(r['speakers'])}: clean {r['clean_accuracy']:.3f}"
              f" ({r['clean_clips']} clips), archive {r['archive_accuracy']:.3f} per actor,"
              f" {r['archive_utterances']:.3f} per utterance ({r['utterances']} utterances,"
              f" {r['missed']} missed), {r['seconds']:.0f} s", flush=True)
        for a, acc in r["clean_per_actor"].items():
            print(f"    actor {a:>2}: clean {acc:.3f}  archive"
                  f" {r['archive_per_actor'].get(a, float('nan')):.3f}")
    clean = np.array([r["clean_accuracy"] for r in results])
    archive = np.array([r["archive_accuracy"] for r in results])
    n_utt = np.array([r["utterances"] for r in results])
    pooled = float((np.array([r["archive_utterances"] for r in results]) * n_utt).sum()
                   / n_utt.sum())
    summary = {"clean_cv": [float(clean.mean()), float(clean.std())],
               "archive": [float(archive.mean()), float(archive.std())],
               "archive_pooled": pooled, "gap": float(clean.mean() - archive.mean()),
               "folds": results}
    with open(os.path.join(args.out, "archive_cv.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    print(f"clean clips, {args.folds}-fold CV: {100 * clean.mean():.1f} ± {100 * clean.std():.1f} %"
          f" | call archive: {100 * archive.mean():.1f} ± {100 * archive.std():.1f} %"
          f" (actors weighted equally; per utterance {100 * pooled:.1f} %,"
          f" {n_utt.sum()} utterances)"
          f" | gap {100 * summary['gap']:.1f} points")


if __name__ == "__main__":
    main()
