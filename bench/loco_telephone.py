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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_default_model import (CORPORA, ROOT, extract_stores,  # noqa: E402
                                 held_out_probabilities, loco_table, options)

__all__ = ["loco_telephone", "main"]

TESTS = ("wide-band", "telephone")


def loco_telephone(ds, progress=print) -> dict:
    """{training: {test: loco_table}} for training ``clean`` and ``+telephone`` and the
    held-out corpora's originals (``wide-band``) and copies (``telephone``)."""
    from dataclasses import replace

    results = {}
    for training, augmented in (("clean", False), ("+telephone", True)):
        progress(f"training {training}:")
        held = held_out_probabilities(ds, replace(options(), augmented=augmented), progress)
        results[training] = {test: loco_table(ds, h) for test, h in zip(TESTS, held)}
    return results


def markdown(results: dict) -> str:
    lines = ["| training | test | " + " | ".join(CORPORA) + " | mean UAR | mean accuracy |",
             "|---|---|" + "---|" * (len(CORPORA) + 2)]
    for training, tables in results.items():
        for test, t in tables.items():
            lines.append(f"| {training} | {test} | "
                         + " | ".join(f"{t['corpora'][c]['uar']:.3f}" for c in CORPORA)
                         + f" | **{t['mean']['uar']:.3f}** | {t['mean']['accuracy']:.3f} |")
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
    stores = extract_stores(args.corpora, args.work, args.features, augment="telephone",
                            embedding=args.features == "all")
    ds = load_dataset(stores, resolve_classes(options().classes), need_frames=True)
    print(f"{int((~ds.augmented).sum())} clips and {int(ds.augmented.sum())} telephone "
          f"copies of {len(CORPORA)} corpora ({time.perf_counter() - start:.0f} s)")
    results = loco_telephone(ds)
    print(markdown(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
