"""Leave-one-corpus-out (LOCO) experiments: which recipe generalises to a corpus it never heard.

Each fold holds out one whole corpus, trains on the others and scores the held-out corpus
on the classes it has, as ``serfast train --cv corpus`` does: the probabilities are
restricted to those classes and renormalised, UAR = mean recall over them, ECE = expected
calibration error of the top probability (15 equal-width bins). ``uar_all_classes`` is the
UAR when the model may also answer a class the corpus lacks (that answer is an error). Decisions are taken on the
mean UAR over the held-out corpora only.

Stores: ``STORE_DIR/<corpus>.npy`` extracted with ``--frames``, e.g.::

    serfast extract ../shared/corpora/tess/manifest.csv /tmp/stores/tess.npy --frames
    serfast extract ../shared/corpora/ravdess /tmp/stores/ravdess.npy --frames

Usage::

    python bench/loco.py /tmp/stores --recipe lr-speaker --recipe lr-file [--json out.json]
    python bench/loco.py --list

Fast recipes (``lr-*``: multinomial logistic regression on serfast's utterance statistics)
take seconds a fold; ``net-*`` recipes train serfast's network (minutes a fold).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from serfast.model.inputs import moments, pooled_frame_stats, standardize
from serfast.model.metrics import restrict, scores
from serfast.model.train import SEED6, TrainOptions, load_dataset

__all__ = ["CORPORA", "Recipe", "RECIPES", "Corpus", "load_corpora", "ece", "loco", "main"]

CORPORA = ("ravdess", "tess", "savee", "nemo", "ased", "emoes")


@dataclass(frozen=True)
class Recipe:
    """One experiment.

    ``model``: "lr" (logistic regression, C = ``c``) or "net" (serfast's network);
    ``norm``: how utterance features are standardised in training and test: "speaker",
    "corpus", "file" (each clip its own group, as predict does for one short file),
    "global"; ``test_norm``: test-time grouping if it differs from ``norm``;
    ``balance``: "class" (n / (K * count) over the pooled rows), "corpus-class" (each
    class weighs the same in total, shared equally by the corpora that have it),
    "within-corpus" (serfast train's: each corpus keeps its rows' weight, split evenly
    over its classes), "none"; the "net" model always uses serfast train's weights;
    ``calibrate``: fit a softmax temperature on inner leave-one-corpus-out predictions
    of the training corpora; ``cmn``: subtract each clip's mean frame before pooling;
    ``features``: the utterance statistics: "all" (serfast's: frame statistics of the
    128 log-mel bands and 20 MFCC + the 168 store values), "melB" (log-mel averaged
    into B bands), "mfcc" (frame statistics of the mean log-mel and MFCC only); with
    "-v" the store values keep only zcr, MFCC means, rms and the six statistical
    columns; ``model`` "svm" (RBF, C = ``c``) and "mlp" (scikit-learn, hidden ``hidden``)
    are the non-linear baselines; ``ensemble``/``epochs``: serfast network options.
    """

    model: str = "lr"
    norm: str = "speaker"
    test_norm: str = ""
    balance: str = "class"
    calibrate: bool = False
    c: float = 0.1
    cmn: bool = False
    ensemble: int = 2
    epochs: int = 40
    sequence: bool = False
    features: str = "all"
    hidden: int = 128
    seed: int = 0
    note: str = ""


RECIPES = {
    "lr-speaker": Recipe(),
    "lr-corpus": Recipe(norm="corpus"),
    "lr-file": Recipe(norm="file"),
    "lr-global": Recipe(norm="global"),
    "lr-speaker-test-file": Recipe(test_norm="file"),
    "lr-cmn-file": Recipe(norm="file", cmn=True),
    "lr-speaker-noweight": Recipe(balance="none"),
    "lr-speaker-cc": Recipe(balance="corpus-class"),
    "lr-speaker-cc-cal": Recipe(balance="corpus-class", calibrate=True),
    "lr-speaker-cc-c1": Recipe(balance="corpus-class", c=1.0),
    "lr-speaker-cc-c001": Recipe(balance="corpus-class", c=0.01),
    "lr-mfcc": Recipe(balance="corpus-class", c=0.01, features="mfcc"),
    "lr-mfcc-v": Recipe(balance="corpus-class", c=0.01, features="mfcc-v"),
    "lr-mel16": Recipe(balance="corpus-class", c=0.01, features="mel16"),
    "lr-mel16-v": Recipe(balance="corpus-class", c=0.01, features="mel16-v"),
    "lr-mel32-v": Recipe(balance="corpus-class", c=0.01, features="mel32-v"),
    "lr-all-v": Recipe(balance="corpus-class", c=0.01, features="all-v"),
    "lr-c0003": Recipe(balance="corpus-class", c=0.003),
    "svm-c1": Recipe(model="svm", balance="corpus-class", c=1.0),
    "svm-mel16-v": Recipe(model="svm", balance="corpus-class", c=1.0, features="mel16-v"),
    "mlp-a1": Recipe(model="mlp", balance="corpus-class", c=1.0),
    "mlp-mel16-v": Recipe(model="mlp", balance="corpus-class", c=1.0, features="mel16-v"),
    "svm-mfcc": Recipe(model="svm", balance="corpus-class", c=1.0, features="mfcc"),
    "mlp-mfcc": Recipe(model="mlp", balance="corpus-class", c=1.0, features="mfcc"),
    "mlp-mfcc-a10": Recipe(model="mlp", balance="corpus-class", c=10.0, features="mfcc"),
    "lr-mel8": Recipe(balance="corpus-class", c=0.01, features="mel8"),
    "lr-mfcc-c003": Recipe(balance="corpus-class", c=0.03, features="mfcc"),
    "lr-mfcc-c0003": Recipe(balance="corpus-class", c=0.003, features="mfcc"),
    "lr-mfcc-c0003-wc": Recipe(balance="within-corpus", c=0.003, features="mfcc"),
    "lr-mfcc-c0003-none": Recipe(balance="none", c=0.003, features="mfcc"),
    "lr-mfcc-pitch": Recipe(balance="corpus-class", c=0.003, features="mfcc+pitch"),
    "lr-mfcc-cal": Recipe(balance="corpus-class", c=0.003, features="mfcc", calibrate=True),
    "net-all": Recipe(model="net"),
    "net-mfcc": Recipe(model="net", features="mfcc"),
    "net-mfcc-e4": Recipe(model="net", features="mfcc", ensemble=4),
    "net-mfcc-ep20": Recipe(model="net", features="mfcc", epochs=20),
    "net-mfcc-cal": Recipe(model="net", features="mfcc", calibrate=True),
    "net-mfcc-seq": Recipe(model="net", features="mfcc", sequence=True),
    "net-all-seq": Recipe(model="net", features="all", sequence=True),
}


@dataclass
class Corpus:
    """The seed6-labelled original clips of one store and their utterance statistics."""

    name: str
    ds: object  # serfast.model.train.Dataset
    blocks: dict = field(default_factory=dict)  # features, cmn -> (n, d) statistics
    extra: dict = field(default_factory=dict)  # name -> (n, d) extra columns (pitch)

    @property
    def y(self) -> np.ndarray:
        return self.ds.y

    def block(self, recipe: "Recipe") -> np.ndarray:
        """Unstandardised utterance statistics (n, d) of ``recipe.features``."""
        key = (recipe.features, recipe.cmn)
        if key not in self.blocks:
            self.blocks[key] = utterance_block(self.ds, recipe.features, recipe.cmn)
        out = self.blocks[key]
        for name in self.extra:
            if name in recipe.features.split("+"):
                out = np.hstack([out, self.extra[name]])
        return out


VALUE_COLUMNS = np.r_[0, 13:33, 33, 162:168]  # zcr, MFCC means, rms, the six statistics


def utterance_block(ds, features: str, cmn: bool = False) -> np.ndarray:
    """Utterance statistics of every row of ``ds`` for one ``features`` kind (see Recipe)."""
    base = features.split("+")[0]
    kind = base.removesuffix("-v")
    n_mels = ds.spec.n_mels
    frames = [np.asarray(f, np.float32) for f in ds.frames]
    if cmn:
        frames = [f - f.mean(0, keepdims=True) for f in frames]
    if kind == "mfcc":
        frames = [np.hstack([f[:, :n_mels].mean(1, keepdims=True), f[:, n_mels:]]) for f in frames]
        n_mels = 1
    elif kind.startswith("mel"):
        bands = int(kind[3:])
        frames = [np.hstack([f[:, :n_mels].reshape(len(f), bands, -1).mean(2), f[:, n_mels:]])
                  for f in frames]
        n_mels = bands
    values = np.asarray(ds.values[:, ds.spec.slices["values"]], np.float32)
    if base.endswith("-v"):
        values = values[:, VALUE_COLUMNS]
    return np.hstack([pooled_frame_stats(frames, n_mels), values])


def cache_pitch(store_dir: str, name: str) -> None:
    """Write ``<name>.pitch.npy`` beside a store: :func:`serfast.features.pitch.pitch_row`
    (F0 and voicing statistics, 10 columns) of each CSV row's clip with the store's crop
    (zeros for failed rows), unless it exists."""
    import csv

    from serfast.features.pitch import pitch_row
    from serfast.features.spec import FeatureSpec
    from serfast.io.audio import load_clip

    out = os.path.join(store_dir, f"{name}.pitch.npy")
    if os.path.exists(out):
        return
    with open(os.path.join(store_dir, f"{name}.json")) as fh:
        spec = FeatureSpec.from_dict(json.load(fh)["spec"])
    with open(os.path.join(store_dir, f"{name}.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = np.zeros((len(rows), 10), np.float32)
    for i, r in enumerate(rows):
        if r["status"] == "ok":
            table[i] = pitch_row(load_clip(r["path"], spec), spec.sr)
    np.save(out, table)


def load_corpora(store_dir: str, names=CORPORA) -> list[Corpus]:
    """Every corpus store of ``store_dir`` with seed6 labels (no augmented rows)."""
    out = []
    for name in names:
        ds = load_dataset([os.path.join(store_dir, f"{name}.npy")], list(SEED6),
                          need_frames=True)
        if ds.augmented.any():
            raise SystemExit(f"{name}: use stores without augmented rows")
        corpus = Corpus(name, ds)
        pitch = os.path.join(store_dir, f"{name}.pitch.npy")
        if os.path.exists(pitch):  # written by cache_pitch (--pitch)
            import csv

            with open(os.path.join(store_dir, f"{name}.csv"), newline="") as fh:
                index = {r["path"]: int(r["row"]) for r in csv.DictReader(fh)}
            corpus.extra["pitch"] = np.load(pitch)[[index[p] for p in ds.paths]]
        out.append(corpus)
    return out


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (``bins`` equal widths)."""
    conf, hit = proba.max(1), proba.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(hit[m].mean() - conf[m].mean())
    return float(total)


def _groups(corpus: Corpus, norm: str) -> np.ndarray | None:
    if norm == "speaker":
        return corpus.ds.speakers
    if norm == "corpus":
        return np.full(len(corpus.y), corpus.name)
    if norm == "file":
        return corpus.ds.paths
    return None


def sample_weights(y: np.ndarray, corpus_of: np.ndarray, n_classes: int, balance: str) -> np.ndarray:
    """Training weights (n,), mean 1. "class": n / (K * count_k); "corpus-class": every
    class present weighs 1/K in total, shared equally by the corpora that have it."""
    if balance == "none":
        return np.ones(len(y))
    if balance == "class":
        counts = np.bincount(y, minlength=n_classes)
        w = 1.0 / counts[y]
    elif balance == "within-corpus":
        from serfast.model.train import sample_weights as within_corpus

        w = within_corpus(y, corpus_of)
    else:
        w = np.zeros(len(y))
        for k in np.unique(y):
            have = np.unique(corpus_of[y == k])
            for c in have:
                cell = (y == k) & (corpus_of == c)
                w[cell] = 1.0 / (cell.sum() * len(have))
    return w * len(y) / w.sum()


def _lr_inputs(train: list[Corpus], test: list[Corpus], recipe: Recipe):
    """Per-group standardised blocks + gender column of training and test corpora."""
    pick = lambda c: c.block(recipe)
    prior = moments(np.concatenate([pick(c) for c in train]))

    def make(c: Corpus, norm: str) -> np.ndarray:
        x = standardize(pick(c), prior, _groups(c, norm))
        g = c.ds.values[:, c.ds.spec.slices["gender"].start]
        sex = np.where(np.isnan(g), 0.0, 2 * g - 1)[:, None]
        return np.hstack([x, sex])

    return ([make(c, recipe.norm) for c in train],
            [make(c, recipe.test_norm or recipe.norm) for c in test])


def _fit_lr(x, y, w, recipe: Recipe):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    if recipe.model == "svm":
        return SVC(C=recipe.c, probability=True, random_state=recipe.seed).fit(x, y, sample_weight=w)
    if recipe.model == "mlp":
        return MLPClassifier((recipe.hidden,), alpha=recipe.c, max_iter=300, early_stopping=False,
                             random_state=recipe.seed).fit(x, y, sample_weight=w)
    return LogisticRegression(C=recipe.c, max_iter=3000).fit(x, y, sample_weight=w)


def _logits_lr(train: list[Corpus], test: list[Corpus], recipe: Recipe, n_classes: int):
    """Log-probabilities over all ``n_classes`` of every test row (n, n_classes)."""
    xs, xt = _lr_inputs(train, test, recipe)
    y = np.concatenate([c.y for c in train])
    corpus_of = np.concatenate([np.full(len(c.y), i) for i, c in enumerate(train)])
    model = _fit_lr(np.concatenate(xs), y, sample_weights(y, corpus_of, n_classes,
                                                          recipe.balance), recipe)
    out = []
    for x in xt:
        lp = np.full((len(x), n_classes), -1e9)
        lp[:, model.classes_] = model.predict_log_proba(x)
        out.append(lp)
    return out


def _logits_net(train: list[Corpus], test: list[Corpus], recipe: Recipe, n_classes: int):
    """Log-probabilities of serfast's network trained on ``train``."""
    from serfast.model.train import fit

    parts = train + test
    ds = merge([c.ds for c in parts], [c.name for c in parts], recipe.norm)
    sizes = np.cumsum([0] + [len(c.y) for c in parts])
    rows = np.arange(sizes[len(train)])
    options = TrainOptions(ensemble=recipe.ensemble, epochs=recipe.epochs, seed=recipe.seed,
                           norm="global" if recipe.norm == "global" else "speaker",
                           stats=recipe.features, sequence=recipe.sequence,
                           class_weight=recipe.balance != "none")
    fitted = fit(ds, rows, options)
    out = []
    for i, c in enumerate(test):
        r = np.arange(sizes[len(train) + i], sizes[len(train) + i + 1])
        sub = ds.subset(r)
        groups = _groups(c, recipe.test_norm or recipe.norm)
        sub["groups"] = groups if groups is not None else np.zeros(len(r), int)
        out.append(np.log(np.maximum(fitted.predictor.predict_proba(**sub), 1e-12)))
    return out


def merge(datasets: list, names: list[str], norm: str):
    """One Dataset of several corpora; ``groups`` are speakers, corpora or files."""
    from serfast.model.train import Dataset

    cat = lambda k: np.concatenate([getattr(d, k) for d in datasets])
    if norm == "corpus":
        groups = np.concatenate([np.full(len(d.y), n) for d, n in zip(datasets, names)])
    elif norm == "file":
        groups = cat("paths")
    else:
        groups = cat("groups")
    offsets = np.cumsum([0] + [len(d.y) for d in datasets])[:-1]
    corpora = np.concatenate([np.full(len(d.y), n) for d, n in zip(datasets, names)])
    return Dataset(list(datasets[0].labels), datasets[0].spec, cat("values"),
                   [f for d in datasets for f in d.frames], cat("y"), cat("speakers"),
                   groups, np.concatenate([d.source + o for d, o in zip(datasets, offsets)]),
                   cat("augmented"), cat("paths"), corpora=corpora)


def _logits(train, test, recipe, n_classes):
    return (_logits_net if recipe.model == "net" else _logits_lr)(train, test, recipe, n_classes)


def fit_temperature(logp: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature T > 0 minimising the NLL of ``y`` under logp / T."""
    from scipy.optimize import minimize_scalar

    z = np.maximum(logp, -50.0)

    def nll(log_t):
        s = z / np.exp(log_t)
        s = s - s.max(1, keepdims=True)
        return float(-(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(1))).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def _softmax(logp: np.ndarray, t: float = 1.0) -> np.ndarray:
    z = np.maximum(logp, -50.0) / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def loco(corpora: list[Corpus], recipe: Recipe, progress=print) -> dict:
    """Every leave-one-corpus-out fold of ``recipe``: per-corpus scores and the means."""
    labels = list(SEED6)
    folds = []
    for held in range(len(corpora)):
        start = time.perf_counter()
        train = [c for i, c in enumerate(corpora) if i != held]
        test = corpora[held]
        t = 1.0
        if recipe.calibrate:
            inner_logp, inner_y = [], []
            for j in range(len(train)):
                inner = [c for i, c in enumerate(train) if i != j]
                inner_logp += _logits(inner, [train[j]], recipe, len(labels))
                inner_y.append(train[j].y)
            t = fit_temperature(np.concatenate(inner_logp), np.concatenate(inner_y))
        logp = _logits(train, [test], recipe, len(labels))[0]
        proba = _softmax(logp, t)
        present = np.unique(test.y)
        kept = restrict(proba, present)
        s = scores(test.y, kept.argmax(1), labels)
        s.update(corpus=test.name, ece=ece(kept, test.y), temperature=t,
                 uar_all_classes=scores(test.y, proba.argmax(1), labels)["uar"],
                 seconds=round(time.perf_counter() - start, 1))
        folds.append(s)
        progress(f"  {test.name:8s} UAR {s['uar']:.3f}  acc {s['accuracy']:.3f}  "
                 f"ECE {s['ece']:.3f}  T {t:.2f}  ({s['seconds']:.0f} s)")
    mean = {k: float(np.mean([f[k] for f in folds]))
            for k in ("uar", "accuracy", "ece", "uar_all_classes")}
    return {"folds": folds, "mean": mean}


def table(name: str, result: dict) -> str:
    """A Markdown table of one recipe's LOCO result."""
    lines = [f"| {name} | " + " | ".join(f["corpus"] for f in result["folds"]) + " | mean |",
             "|---|" + "---|" * (len(result["folds"]) + 1)]
    for key, label in (("uar", "UAR"), ("accuracy", "accuracy"), ("ece", "ECE")):
        lines.append(f"| {label} | " + " | ".join(f"{f[key]:.3f}" for f in result["folds"])
                     + f" | **{result['mean'][key]:.3f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stores", nargs="?", default="/tmp/stores")
    ap.add_argument("--recipe", action="append", default=[])
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--json", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--pitch", action="store_true",
                    help="first compute F0 statistics of every clip (for +pitch recipes)")
    args = ap.parse_args(argv)
    if args.list:
        for k, r in RECIPES.items():
            print(k, r)
        return 0
    recipes = args.recipe or ["lr-speaker"]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        print(f"unknown recipe(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if args.pitch:
        for name in args.corpora.split(","):
            cache_pitch(args.stores, name)
    corpora = load_corpora(args.stores, args.corpora.split(","))
    results = {}
    for name in recipes:
        print(f"{name}: {RECIPES[name]}")
        results[name] = loco(corpora, RECIPES[name])
        print(table(name, results[name]))
        print(f"{name}: mean UAR {results[name]['mean']['uar']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({k: {"recipe": vars(RECIPES[k]) if hasattr(RECIPES[k], '__dict__') else str(RECIPES[k]), **v}
                       for k, v in results.items()}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
