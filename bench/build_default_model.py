"""Rebuild serfast's shipped models from the six corpora of ``../shared/corpora``:
``default`` (feature set ``all`` with the speaker embedding, the defaults below), ``fast``
(``--features seed --no-embedding --out serfast/model/fast --work /tmp/serfast-fast``) and
``telephone`` (``--features seed --augment telephone --out serfast/model/telephone --work
/tmp/serfast-tel``: the seed set with the speaker embedding, trained on every clip and a
telephone copy of it, for call audio).

Steps (same seed -> same stores, same model, same table):

1. ``serfast extract`` each corpus into ``WORK/<corpus>.npy`` (frames, the whole file:
   ``--offset 0 --duration 0``, ``--features`` FEATURES, ``--embedding``), unless a
   complete store is already there;
2. leave-one-corpus-out with the recipe of :data:`OPTIONS` (serfast's default network),
   keeping every held-out probability: per-corpus accuracy, UAR and ECE, before and
   after temperature calibration (each corpus's temperature is fitted on the other five
   held-out corpora's probabilities);
   With ``--augment``, the same fits also score the held-out corpora's augmented
   copies (a second table);
3. the temperature fitted on all six held-out corpora's probabilities (originals and
   copies);
4. the final model on every clip of the six corpora, with that temperature, written to
   ``serfast/model/default/`` (``--out`` to write elsewhere), plus ``loco.json`` beside
   it and the Markdown table on stdout.

Usage::

    python bench/build_default_model.py [--corpora ../shared/corpora] [--work /tmp/serfast-default]
                                        [--out serfast/model/default] [--features all]
                                        [--no-embedding]
                                        [--augment telephone [--copies 1] [--seed 0]]
                                        [--skip-loco] [--without SPEAKER,…]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPORA = ("ravdess", "tess", "savee", "nemo", "ased", "emoes")
CROP = ["--offset", "0", "--duration", "0"]
#: The feature set of the default model's stores (``fast``: seed).
FEATURES = "all"
#: The shipped members: one logistic regression, no MLP (leave-one-corpus-out mean UAR on
#: the all set: 0.519, against 0.501 for two MLPs and 0.508 for both; bench/RESULTS.md).
ENSEMBLE, LINEAR = 0, 1

__all__ = ["CORPORA", "CROP", "extract_stores", "held_out_probabilities", "main"]


def options(ensemble: int = ENSEMBLE, linear: int = LINEAR):
    """The shipped recipe: serfast train's defaults with a fixed seed, ``ensemble`` MLP
    and ``linear`` logistic-regression members."""
    from serfast.model.train import TrainOptions

    return TrainOptions(seed=0, ensemble=ensemble, linear=linear)


def extract_stores(corpora_dir: str, work: str, features: str = "seed",
                   augment: str = "", copies: int = 1, seed: int = 0,
                   embedding: bool = False) -> list[str]:
    """One store per corpus in ``work`` (extracted with the feature set ``features``,
    the speaker embedding when ``embedding``, and, with ``augment``, ``copies`` copies of
    every clip per augmentation drawn with ``seed``, unless complete); their paths."""
    os.makedirs(work, exist_ok=True)
    stores = []
    for name in CORPORA:
        out = os.path.join(work, f"{name}.npy")
        source = os.path.join(corpora_dir, name)
        manifest = os.path.join(source, "manifest.csv")
        if os.path.exists(manifest):
            source = manifest
        if not os.path.exists(out):
            subprocess.run([sys.executable, "-m", "serfast_cli", "extract", source, out,
                            "--frames", "--quiet", "--features", features, *CROP,
                            "--embedding" if embedding else "--no-embedding",
                            *(["--augment", augment, "--copies", str(copies),
                               "--seed", str(seed)] if augment else [])],
                           check=True)
        stores.append(out)
    return stores


def held_out_probabilities(ds, opts, progress=print) -> tuple[dict, dict]:
    """Leave-one-corpus-out, one fit per held-out corpus: ``(originals, copies)``, each
    {corpus: (test rows, probabilities (n, K))} for the held-out corpus's original clips
    and for its augmented copies (which never train: they belong to their source clip's
    corpus; ``copies`` is empty when the stores hold none)."""
    from serfast.model.train import fit

    corpus_of = ds.corpora[ds.source]
    originals, copies = {}, {}
    for name in sorted(set(ds.corpora)):
        start = time.perf_counter()
        held = corpus_of == name
        fitted = fit(ds, np.flatnonzero(~held & (opts.augmented | ~ds.augmented)), opts)
        for out, pick in ((originals, ~ds.augmented), (copies, ds.augmented)):
            test_rows = np.flatnonzero(held & pick)
            if len(test_rows):
                out[name] = (test_rows,
                             fitted.predictor.predict_proba(**ds.subset(test_rows)))
        progress(f"held out {name}: {time.perf_counter() - start:.0f} s")
    return originals, copies


def loco_table(ds, held: dict) -> dict:
    """Per-corpus scores (restricted to each corpus's classes) before and after calibration."""
    from serfast.model.metrics import expected_calibration_error, restrict, scores
    from serfast.model.predictor import calibrated
    from serfast.model.train import cross_temperatures

    temperatures = cross_temperatures([(proba, ds.y[test_rows])
                                       for test_rows, proba in held.values()])
    rows = {}
    for (name, (test_rows, proba)), t in zip(held.items(), temperatures):
        y = ds.y[test_rows]
        present = np.unique(y)
        answer = restrict(proba, present)
        s = scores(y, answer.argmax(1), ds.labels)
        rows[name] = {"accuracy": s["accuracy"], "uar": s["uar"], "n": s["n"],
                      "classes": [ds.labels[k] for k in present],
                      "confusion": s["confusion"],
                      "ece": expected_calibration_error(answer, y),
                      "temperature": t,
                      "ece_calibrated": expected_calibration_error(
                          restrict(calibrated(proba, t), present), y)}
    keys = ("accuracy", "uar", "ece", "ece_calibrated")
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
    return {"corpora": rows, "mean": mean}


def markdown(table: dict) -> str:
    names = list(table["corpora"])
    lines = ["| held-out corpus | " + " | ".join(names) + " | mean |",
             "|---|" + "---|" * (len(names) + 1)]
    for key, label in (("uar", "UAR"), ("accuracy", "accuracy"), ("ece", "ECE"),
                       ("ece_calibrated", "ECE, calibrated")):
        lines.append(f"| {label} | " + " | ".join(f"{table['corpora'][n][key]:.3f}" for n in names)
                     + f" | **{table['mean'][key]:.3f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=os.path.join(ROOT, "..", "shared", "corpora"))
    ap.add_argument("--work", default="/tmp/serfast-default")
    ap.add_argument("--out", default=os.path.join(ROOT, "serfast", "model", "default"))
    ap.add_argument("--features", default=FEATURES, choices=("seed", "prosody", "all"),
                    help="the stores' feature set (serfast extract --features)")
    ap.add_argument("--no-embedding", action="store_true",
                    help="stores without the speaker embedding (serfast extract "
                         "--no-embedding; the fast model)")
    ap.add_argument("--ensemble", type=int, default=ENSEMBLE,
                    help="MLP members (serfast train --ensemble)")
    ap.add_argument("--linear", type=int, default=LINEAR,
                    help="logistic-regression members (serfast train --linear)")
    ap.add_argument("--augment", default="",
                    help="train on one copy of every clip per augmentation too (serfast "
                         "extract --augment; the telephone model: telephone); the table is "
                         "then also scored on the held-out corpora's copies")
    ap.add_argument("--copies", type=int, default=1,
                    help="copies of every clip per augmentation (serfast extract --copies)")
    ap.add_argument("--seed", type=int, default=0,
                    help="the augmentations' random draws (serfast extract --seed)")
    ap.add_argument("--skip-loco", action="store_true",
                    help="train the final model only (temperature 1)")
    ap.add_argument("--without", default="",
                    help="comma list of speakers the final model never hears (the bench "
                         "archive's: ravdess_17,ravdess_18,ravdess_19,ravdess_20); implies "
                         "--skip-loco")
    args = ap.parse_args(argv)

    from dataclasses import replace

    from serfast.model.clips import clip_ids
    from serfast.model.predictor import fit_temperature
    from serfast.model.saved import save_model
    from serfast.model.train import fit, load_dataset, resolve_classes

    opts = options(args.ensemble, args.linear)
    start = time.perf_counter()
    stores = extract_stores(args.corpora, args.work, args.features, args.augment,
                            args.copies, args.seed, not args.no_embedding)
    ds = load_dataset(stores, resolve_classes(opts.classes), need_frames=True)
    n_copies = int(ds.augmented.sum())
    print(f"{len(ds.y) - n_copies} clips and {n_copies} augmented copies of "
          f"{len(set(ds.corpora))} corpora, {len(np.unique(ds.speakers))} speakers "
          f"({time.perf_counter() - start:.0f} s)")
    info = {"recipe": {k: v for k, v in vars(opts).items()}, "stores": CORPORA,
            "crop": CROP, "features": args.features, "embedding": not args.no_embedding,
            "augment": args.augment,
            **({"augment_copies": args.copies, "augment_seed": args.seed}
               if args.augment else {}),
            "clips": int(len(ds.y) - n_copies), "copies": n_copies,
            "speakers": int(len(np.unique(ds.speakers)))}
    temperature = 1.0
    without = [w for w in args.without.split(",") if w]
    unknown = sorted(set(without) - set(ds.speakers))
    if unknown:
        ap.error(f"--without: no speaker {', '.join(unknown)} in the stores")
    if not args.skip_loco and not without:
        held, held_copies = held_out_probabilities(ds, opts)
        table = loco_table(ds, held)
        info["loco"] = table
        print(markdown(table))
        if held_copies:  # the same folds scored on the held-out corpora's copies
            info["loco_copies"] = loco_table(ds, held_copies)
            print(f"on the held-out corpora's {args.augment} copies:")
            print(markdown(info["loco_copies"]))
            held = {n: (np.concatenate([held[n][0], held_copies[n][0]]),
                        np.concatenate([held[n][1], held_copies[n][1]])) for n in held}
        rows = np.concatenate([held[n][0] for n in held])
        temperature = fit_temperature(np.concatenate([held[n][1] for n in held]), ds.y[rows])
        info["temperature"] = temperature
        print(f"temperature fitted on all held-out rows: {temperature:.3f}")
    t0 = time.perf_counter()
    final = fit(ds, np.flatnonzero(~np.isin(ds.speakers, without)), opts)
    info["without"] = without
    info["final_seconds"] = round(time.perf_counter() - t0, 1)
    final.predictor.config = replace(final.predictor.config, temperature=temperature)
    info["seconds"] = round(time.perf_counter() - start, 1)
    originals = np.flatnonzero(~ds.augmented & ~np.isin(ds.speakers, without))
    save_model(args.out, final.predictor, final.network, final.member_weights,
               {"training": {"corpora": list(CORPORA), "clips": info["clips"],
                             "copies": n_copies, "augment": args.augment,
                             "speakers": info["speakers"], "crop": CROP}},
               clips=clip_ids(ds.paths[originals], ds.values[originals]),
               write_more=lambda folder: _write_json(os.path.join(folder, "loco.json"), info))
    print(f"saved -> {args.out} (final fit {info['final_seconds']:.0f} s, "
          f"all {info['seconds']:.0f} s)")
    return 0


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
