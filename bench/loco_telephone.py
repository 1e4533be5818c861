"""Leave-one-corpus-out on telephone audio: does training on telephone copies help a model
label calls of corpora it never heard, and what does it cost on wide-band audio?

Each corpus is extracted once with one telephone copy of every clip
(``serfast extract … --augment telephone``: 300-3,400 Hz, 8 kHz, line noise, µ-law; the
whole file, as the shipped model's stores). Each fold holds out one whole corpus and
trains the shipped recipe (:func:`build_default_model.options`) on the other five,
either on their original clips only (``clean``) or on the originals and their telephone
copies (``+telephone``); it then scores the held-out corpus's originals (``wide-band``)
and, apart, their telephone copies (``telephone``), on the classes the corpus has.
Telephone copies are standardised per speaker apart from the originals, as a channel of
its own (serfast train's grouping), like a call's channel in ``serfast predict``.

Usage::

    python bench/loco_telephone.py [--corpora ../shared/corpora] [--work /tmp/serfast-tel]
                                   [--features all] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_default_model import CORPORA, CROP, ROOT, options  # noqa: E402

__all__ = ["extract_telephone_stores", "loco_telephone", "main"]


def extract_telephone_stores(corpora_dir: str, work: str, features: str) -> list[str]:
    """One store per corpus in ``work``: every clip and one telephone copy (unless the
    store is complete); their paths."""
    os.makedirs(work, exist_ok=True)
    stores = []
    for name in CORPORA:
        out = os.path.join(work, f"{name}.npy")
        source = os.path.join(corpora_dir, name)
        if os.path.exists(os.path.join(source, "manifest.csv")):
            source = os.path.join(source, "manifest.csv")
        if not os.path.exists(out):
            subprocess.run([sys.executable, "-m", "serfast_cli", "extract", source, out,
                            "--frames", "--quiet", "--features", features,
                            "--augment", "telephone", *CROP], check=True)
        stores.append(out)
    return stores


def loco_telephone(ds, progress=print) -> dict:
    """{training: {corpus: {test: scores}}} for training ``clean`` and ``+telephone``,
    tests ``wide-band`` and ``telephone``; ``mean`` per training and test."""
    from dataclasses import replace

    from serfast.model.metrics import expected_calibration_error, restrict, scores
    from serfast.model.train import fit

    corpus_of = ds.corpora[ds.source]  # a copy belongs to its source clip's corpus
    results = {}
    for training, augmented in (("clean", False), ("+telephone", True)):
        opts = replace(options(), augmented=augmented)
        per = {}
        for name in CORPORA:
            start = time.perf_counter()
            held = corpus_of == name
            rows = np.flatnonzero(~held & (augmented | ~ds.augmented))
            fitted = fit(ds, rows, opts)
            per[name] = {}
            for test, pick in (("wide-band", ~ds.augmented), ("telephone", ds.augmented)):
                test_rows = np.flatnonzero(held & pick)
                proba = fitted.predictor.predict_proba(**ds.subset(test_rows))
                y = ds.y[test_rows]
                answer = restrict(proba, np.unique(y))
                s = scores(y, answer.argmax(1), ds.labels)
                per[name][test] = {"uar": s["uar"], "accuracy": s["accuracy"], "n": s["n"],
                                   "ece": expected_calibration_error(answer, y)}
            progress(f"{training:10s} held out {name:8s} wide-band UAR "
                     f"{per[name]['wide-band']['uar']:.3f}  telephone UAR "
                     f"{per[name]['telephone']['uar']:.3f} "
                     f"({time.perf_counter() - start:.0f} s)")
        mean = {test: {k: float(np.mean([per[c][test][k] for c in CORPORA]))
                       for k in ("uar", "accuracy", "ece")}
                for test in ("wide-band", "telephone")}
        results[training] = {"corpora": per, "mean": mean}
    return results


def markdown(results: dict) -> str:
    lines = ["| training | test | " + " | ".join(CORPORA) + " | mean UAR | mean accuracy |",
             "|---|---|" + "---|" * (len(CORPORA) + 2)]
    for training, r in results.items():
        for test in ("wide-band", "telephone"):
            lines.append(f"| {training} | {test} | "
                         + " | ".join(f"{r['corpora'][c][test]['uar']:.3f}" for c in CORPORA)
                         + f" | **{r['mean'][test]['uar']:.3f}** | "
                         f"{r['mean'][test]['accuracy']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=os.path.join(ROOT, "..", "shared", "corpora"))
    ap.add_argument("--work", default="/tmp/serfast-tel")
    ap.add_argument("--features", default="all", choices=("seed", "prosody", "all"))
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    from serfast.model.train import load_dataset, resolve_classes

    start = time.perf_counter()
    stores = extract_telephone_stores(args.corpora, args.work, args.features)
    ds = load_dataset(stores, resolve_classes(options().classes), need_frames=True)
    print(f"{int((~ds.augmented).sum())} clips and {int(ds.augmented.sum())} telephone "
          f"copies of {len(CORPORA)} corpora ({time.perf_counter() - start:.0f} s)")
    results = loco_telephone(ds)
    print(markdown(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
