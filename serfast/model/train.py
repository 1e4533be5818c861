"""Training: labelled rows of one or more stores, speaker folds, the training loop,
cross-validation, scikit-learn comparisons, the gender classifier and evaluation.

Augmented rows (``augment`` set in the store CSV) train with their source clip's speaker
and are never scored. Per-speaker normalisation groups augmented rows by speaker and
augmentation, so each augmented copy set is standardised like a separate channel.

A row's corpus is its store's ``dataset`` column (``ravdess``, ``nemo``, ...); rows whose
dataset names no corpus (``manifest``, ``folders``, ``unlabelled``) take the name of their
store file (``emoes.npy`` -> ``emoes``). Class weighting balances the classes within each
corpus, so a class that one corpus lacks is not taught as rare. Leave-one-corpus-out
(``cv="corpus"``) scores each held-out corpus on the classes it has: the model's answer is
its most probable class among them (:func:`~serfast.model.metrics.restrict`).
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..io.corpus import EMOTIONS
from .metrics import (ECE_BINS, calibration_bins, expected_calibration_error, restrict,
                      scores, summarize_folds)
from .config import NetworkConfig
from .forward import keras_forward, member_arrays
from .gender import GenderClassifier
from .inputs import gender_column, moments, network_inputs, stat_block, standardize
from .predictor import Predictor, calibrated, fit_temperature
from .clips import clip_ids, load_clip_ids, trained_on
from .saved import check_model_dir, load_predictor, model_folder, save_model
from .networks import (average_members, build_linear_member, build_method, build_seq_member,
                       build_stats_member, keras_modules, seeded_and_deterministic)
from ..io.store import open_store
from ..features.spec import STORE_SPEC

__all__ = ["CLASS_SETS", "SEED6", "Dataset", "Fitted", "TrainError", "TrainOptions",
           "GENERIC_DATASETS", "compare", "cross_calibrated", "cross_temperatures",
           "cross_validate", "evaluate", "fit", "fit_gender",
           "fit_norm", "fold_rows", "gender_accuracy", "leave_one_corpus_out", "load_dataset",
           "method_validation", "network_config", "resolve_classes", "sample_weights",
           "speaker_folds", "store_notes", "train"]

SEED6 = ("neutral", "happy", "sad", "angry", "fearful", "disgust")
CLASS_SETS = {"seed6": SEED6, "all": EMOTIONS}

#: Store ``dataset`` values that name no corpus: such rows take their store file's name.
GENERIC_DATASETS = ("", "manifest", "folders", "unlabelled")


class TrainError(ValueError):
    """Bad training input (stores, classes, options); one-line message."""


@dataclass
class TrainOptions:
    """Options of :func:`train`; None picks the network's default."""

    classes: str = "seed6"  # seed6 | all | comma list of canonical emotions
    cv: int | str = 5  # speaker folds; 0 = no cross-validation; "corpus" = leave one out
    network: str = "serfast"  # serfast | method
    extractor: str = "conv1d"  # method: conv1d | conv2d
    classifier: str = "mlp"  # method: mlp | lstm | bilstm
    norm: str | None = None  # speaker | global (serfast: speaker, method: global)
    ensemble: int = 2  # serfast: MLP (and sequence) members
    linear: int = 0  # serfast: logistic-regression members over the same statistics
    linear_c: float = 0.003  # their inverse L2 strength (scikit-learn's C)
    stats: str = "mfcc"  # serfast: frames the MLP statistics pool: all | mfcc (NetworkConfig)
    rhythm: bool = True  # serfast: add the speech rhythm of F0 and loudness frames if stored
    sequence: bool = False  # serfast: also sequence members over the frames
    epochs: int | None = None  # serfast: 40 fixed; method: at most 100, early stopping
    batch_size: int | None = None  # serfast 32, method 64
    class_weight: bool = True
    augmented: bool = True  # train on the augmented rows of the stores
    val_fraction: float = 0.1  # method: share of training speakers for early stopping
    seed: int = 0
    compare_limit: float = 900.0  # --compare: seconds per cell before it stops early; 0 = none


def resolve_classes(classes: str) -> list[str]:
    """``seed6``, ``all`` or a comma list -> canonical labels in EMOTIONS order."""
    if classes in CLASS_SETS:
        return list(CLASS_SETS[classes])
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in EMOTIONS]
    repeated = sorted({c for c in wanted if wanted.count(c) > 1})
    if repeated:
        raise TrainError(f"--classes names {', '.join(repeated)} more than once "
                         f"(got {classes!r})")
    if unknown or len(wanted) < 2:
        raise TrainError(f"--classes: use seed6, all or a comma list of at least two of "
                         f"{', '.join(EMOTIONS)} (got {classes!r})")
    return [e for e in EMOTIONS if e in wanted]


@dataclass
class Dataset:
    """Labelled ok rows of one or more stores. ``values`` (n, 169) float32, ``frames``
    per-row (n_frames, 148) memmap views or None, ``y`` (n,) class index, ``speakers``
    and ``groups`` (n,) str, ``source`` (n,) index of the original row (itself for
    originals), ``augmented`` (n,) bool, ``paths`` (n,) str, ``corpora`` (n,) str (the
    row's corpus, see the module docstring)."""

    labels: list[str]
    spec: object
    values: np.ndarray
    frames: list[np.ndarray] | None
    y: np.ndarray
    speakers: np.ndarray
    groups: np.ndarray
    source: np.ndarray
    augmented: np.ndarray
    paths: np.ndarray
    left_out: int = 0  # labelled original clips whose label is not in ``labels``
    corpora: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> dict:
        """Arguments of :func:`network_inputs` for ``rows`` (values, frames, groups)."""
        return {"values": self.values[rows], "groups": self.groups[rows],
                "frames": None if self.frames is None else [self.frames[i] for i in rows]}


def load_dataset(store_paths: list[str], labels: list[str], need_speakers: bool = True,
                 need_frames: bool = False) -> Dataset:
    """Read the rows of ``store_paths`` labelled with one of ``labels`` (StoreError and
    TrainError on bad input). All stores must share one feature spec."""
    values, frames, y, speakers, groups, source, augmented, paths, corpora = (
        [] for _ in range(9))
    spec, has_frames, left_out = None, True, 0
    for path in store_paths:
        store = open_store(path)
        if spec is not None and store.spec != spec:
            raise TrainError(f"{path} was extracted with another feature spec than "
                             f"{store_paths[0]}")
        spec = store.spec
        has_frames &= store.frames is not None
        store_name = os.path.splitext(os.path.basename(path))[0]
        kept: dict[int, int] = {}  # store row -> dataset index of kept original rows
        for i, r in enumerate(store.rows):
            if r["status"] != "ok":
                continue
            src = int(r["source"])
            if src >= 0 and src not in kept:
                continue  # augmented copy of a clip that is not used
            if src < 0 and r["label"] not in labels:
                left_out += bool(r["label"])
                continue
            if need_speakers and not r["speaker"]:
                raise TrainError(f"{path}: row {i} has no speaker; cross-validation over "
                                 f"speaker folds (--cv K) needs one for every clip: use "
                                 f"--cv 0 (or a manifest with speakers)")
            index = len(y)
            if src < 0:
                kept[i] = index
            y.append(labels.index(r["label"]))
            speaker = f"{r['speaker'] or r['path']}"
            speakers.append(speaker)
            groups.append(speaker + ("/" + r["augment"] if r["augment"] else ""))
            source.append(kept[src] if src >= 0 else index)
            augmented.append(src >= 0)
            paths.append(r["path"])
            corpora.append(store_name if r["dataset"] in GENERIC_DATASETS else r["dataset"])
            values.append(np.asarray(store.values[i]))
            if store.frames is not None:
                frames.append(store.row_frames(i))
    if need_frames and not has_frames:
        raise TrainError("this network needs frame-level features, which the store(s) lack: "
                         "re-extract with frames (serfast extract without --no-frames)")
    if not y:
        raise TrainError(f"no usable rows labelled {', '.join(labels)} in "
                         f"{', '.join(store_paths)}")
    return Dataset(labels, spec, np.asarray(values, np.float32), frames if has_frames else None,
                   np.asarray(y), np.asarray(speakers), np.asarray(groups), np.asarray(source),
                   np.asarray(augmented), np.asarray(paths), left_out, np.asarray(corpora))


def speaker_folds(speakers: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index (n,) per row: the sorted speakers, shuffled with ``seed``, split into
    ``k`` near-equal folds of whole speakers (RAVDESS, k=5: folds of 4 actors)."""
    unique = np.unique(speakers)
    if not 2 <= k <= len(unique):
        raise TrainError(f"--cv {k}: need 2 <= K <= number of speakers ({len(unique)})")
    order = np.random.default_rng(seed).permutation(unique)
    fold_of = {s: f for f, chunk in enumerate(np.array_split(order, k)) for s in chunk}
    return np.array([fold_of[s] for s in speakers])


# ---------------------------------------------------------------- fitting

def network_config(options: TrainOptions, ds: Dataset) -> NetworkConfig:
    """The network configuration for ``options`` on ``ds``."""
    serfast = options.network == "serfast"
    if not serfast and not ds.spec.has_seed:
        raise TrainError(f"--network method needs the seed columns; the store holds feature "
                         f"set {ds.spec.name!r} (extract with --features seed or all)")
    frames = ds.frames is not None if serfast else options.extractor == "conv2d"
    n_steps = max((len(f) for f in ds.frames), default=0) if ds.frames is not None else 0
    sequence = frames and options.sequence
    kinds = (["stats"] * options.ensemble + ["linear"] * options.linear
             + (["seq"] * options.ensemble if sequence else []) if serfast else [])
    if serfast and not kinds:
        raise TrainError("the serfast network needs at least one member (--ensemble or --linear)")
    return NetworkConfig(network=options.network, extractor=options.extractor,
                         classifier=options.classifier,
                         norm=options.norm or ("speaker" if serfast else "global"),
                         ensemble=options.ensemble, frames=frames,
                         n_steps=n_steps if sequence or not serfast else 0,
                         members=kinds, stats=options.stats,
                         rhythm=(serfast and frames and options.rhythm
                                 and "f0_hz" in ds.spec.frame_columns))


def fit_gender(ds: Dataset, rows: np.ndarray) -> GenderClassifier | None:
    """Logistic regression on the rows of known gender; None if one gender is missing."""
    from sklearn.linear_model import LogisticRegression

    gender = ds.spec.slices["gender"].start
    g = ds.values[rows, gender]
    known = rows[~np.isnan(g)]
    target = ds.values[known, gender]
    if len(np.unique(target)) < 2:
        return None
    x = ds.values[known, ds.spec.slices["values"]].astype(np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-8
    clf = LogisticRegression(C=0.1, max_iter=2000).fit((x - mean) / scale, target)
    return GenderClassifier(mean, scale, clf.coef_[0], float(clf.intercept_[0]))


def fit_norm(config: NetworkConfig, ds: Dataset, rows: np.ndarray) -> dict:
    """Training moments of every input block of ``config`` over ``rows``."""
    sub = ds.subset(rows)
    if config.network == "serfast":
        norm = {"stats": moments(stat_block(config, ds.spec, sub["values"], sub["frames"]))}
        if config.frames:
            norm["frames"] = moments(np.concatenate(sub["frames"]))
        return norm
    norm = {"aux": moments(sub["values"][:, ds.spec.slices["stats"]]),
            "acoustic": moments(sub["values"][:, ds.spec.slices["acoustic"]])}
    if config.frames:
        norm["logmel"] = moments(np.concatenate([f[:, :ds.spec.n_mels] for f in sub["frames"]]))
    return norm


def sample_weights(y: np.ndarray, corpora: np.ndarray) -> np.ndarray:
    """Per-row loss weights (n,) that balance the classes within each corpus.

    A row of class k in corpus c weighs n_c / (K_c * n_ck): n_c rows of c, K_c classes
    present in c, n_ck rows of class k in c. Each corpus keeps its total weight n_c and
    splits it evenly over the classes it has, so a class absent from one corpus is not
    made rare by it. One corpus: the balanced class weights n / (K * n_k).
    """
    weights = np.empty(len(y), dtype=np.float64)
    for corpus in np.unique(corpora):
        rows = np.flatnonzero(corpora == corpus)
        classes, index, counts = np.unique(y[rows], return_inverse=True, return_counts=True)
        weights[rows] = len(rows) / (len(classes) * counts[index])
    return weights


@dataclass
class Fitted:
    """A trained model: the predictor, the Keras network, NumPy member weights, curves."""

    predictor: Predictor
    network: object
    member_weights: list[dict]
    history: list[dict] = field(default_factory=list)  # one per member: loss/accuracy


#: Logit of a class no training row has, in a linear member (its probability ~1e-13).
ABSENT_LOGIT = -30.0


def fit_linear(member, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
               n_classes: int, c: float) -> None:
    """Set a linear member's weights to a multinomial logistic regression (scikit-learn,
    L-BFGS, inverse L2 strength ``c``) of ``y`` on ``x`` (n, d), rows weighted by
    ``weights``; a class absent from ``y`` gets :data:`ABSENT_LOGIT`."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=weights)
    kernel = np.zeros((x.shape[1], n_classes), np.float32)
    bias = np.full(n_classes, ABSENT_LOGIT, np.float32)
    classes = lr.classes_.astype(int)
    if len(classes) == 2:  # scikit-learn's binary form: one logit for classes_[1]
        kernel[:, classes[1]], bias[classes] = lr.coef_[0], (0.0, lr.intercept_[0])
    else:
        kernel[:, classes], bias[classes] = lr.coef_.T, lr.intercept_
    member.get_layer("out").set_weights([kernel, bias])


def fit(ds: Dataset, rows: np.ndarray, options: TrainOptions) -> Fitted:
    """Train one model (all ensemble members) on dataset ``rows`` (indices), with
    TensorFlow's op determinism on and the caller's random generators restored after
    (:func:`~serfast.model.networks.seeded_and_deterministic`)."""
    with seeded_and_deterministic(options.seed):
        return _fit(ds, rows, options)


def _fit(ds: Dataset, rows: np.ndarray, options: TrainOptions) -> Fitted:
    keras, _ = keras_modules()
    config = network_config(options, ds)
    norm = fit_norm(config, ds, rows)
    gender = fit_gender(ds, rows)
    inputs = network_inputs(config, norm, ds.spec, **ds.subset(rows), gender=gender)
    shapes = {k: v.shape[1:] for k, v in inputs.items()}
    y = ds.y[rows]
    n_classes = len(ds.labels)
    weights = sample_weights(y, ds.corpora[rows]) if options.class_weight else None
    members, histories = [], []
    if config.network == "serfast":
        for j, kind in enumerate(config.members):
            keras.utils.set_random_seed(options.seed * 1000 + j)
            if kind == "linear":
                member = build_linear_member(shapes["stats"][0], n_classes, f"linear{j}")
                fit_linear(member, inputs["stats"], y, weights, n_classes, options.linear_c)
                members.append(member)
                continue
            member = (build_stats_member(shapes["stats"][0], n_classes, f"stats{j}")
                      if kind == "stats" else
                      build_seq_member(*shapes["seq"], n_classes, f"seq{j}"))
            member.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                           metrics=["accuracy"])
            h = member.fit({kind: inputs[kind]}, y, epochs=options.epochs or 40,
                           batch_size=options.batch_size or 32, sample_weight=weights,
                           shuffle=True, verbose=0)
            members.append(member)
            histories.append(h.history)
        network = average_members(members, config.members, shapes)
        member_weights = [member_arrays(m, k) for m, k in zip(members, config.members)]
    else:
        keras.utils.set_random_seed(options.seed)
        network = build_method(config, shapes, n_classes)
        network.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        x_fit, y_fit, fit_args = method_validation(ds, rows, options, inputs, y, weights)
        h = network.fit(x_fit, y_fit, epochs=options.epochs or 100,
                        batch_size=options.batch_size or 64,
                        shuffle=True, verbose=0, **fit_args)
        histories.append(h.history)
        member_weights = []
    predictor = Predictor(list(ds.labels), ds.spec, config, norm, gender, keras_forward(network))
    return Fitted(predictor, network, member_weights, histories)


def method_validation(ds: Dataset, rows: np.ndarray, options: TrainOptions,
                      inputs: dict[str, np.ndarray], y: np.ndarray,
                      weights: np.ndarray | None = None) -> tuple[dict, np.ndarray, dict]:
    """The method's early stopping on a validation split of whole training speakers:
    (training inputs, training targets, extra Keras ``fit`` arguments, with the training
    rows' ``sample_weight`` when ``weights`` (n,) is given)."""
    keras, _ = keras_modules()
    speakers = np.unique(ds.speakers[rows])
    n_val = math.ceil(options.val_fraction * len(speakers))
    if n_val == 0 or n_val >= len(speakers):
        return inputs, y, {} if weights is None else {"sample_weight": weights}
    val_speakers = np.random.default_rng(options.seed).choice(speakers, n_val, replace=False)
    is_val = np.isin(ds.speakers[rows], val_speakers)
    scored = is_val & ~ds.augmented[rows]
    val = ({k: v[scored] for k, v in inputs.items()}, y[scored])
    callbacks = [keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=5, min_lr=1e-7)]
    extra = {} if weights is None else {"sample_weight": weights[~is_val]}
    return ({k: v[~is_val] for k, v in inputs.items()}, y[~is_val],
            {"validation_data": val, "callbacks": callbacks, **extra})


# ---------------------------------------------------------------- cross-validation

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def fold_rows(ds: Dataset, folds: np.ndarray, f: int, augmented: bool) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, scored test rows) of fold ``f``: augmented rows train with their
    source's fold (when ``augmented``) and are never tested."""
    in_fold = folds[ds.source] == f
    train_rows = np.flatnonzero(~in_fold & (augmented | ~ds.augmented))
    test_rows = np.flatnonzero(in_fold & ~ds.augmented)
    return train_rows, test_rows


def gender_accuracy(predictor: Predictor, ds: Dataset, rows: np.ndarray) -> float | None:
    """Accuracy of the model's gender classifier on the rows of known gender (per speaker)."""
    gender = ds.spec.slices["gender"].start
    truth = ds.values[rows, gender]
    known = rows[~np.isnan(truth)]
    if predictor.gender is None or len(known) == 0:
        return None
    guess = predictor.gender.predict(ds.values[known], ds.speakers[known])
    return float((guess == ds.values[known, gender]).mean())


def cross_validate(ds: Dataset, options: TrainOptions, progress: Progress = _quiet) -> dict:
    """K folds of whole speakers: per-fold scores, their mean ± std, pooled scores of
    every scored clip, training curves and per-fold gender-classifier accuracy. The
    pooled scores also hold ``temperature`` (fitted on every held-out probability) and
    ``ece_calibrated`` (each fold at the temperature of the other folds)."""
    folds = speaker_folds(ds.speakers, options.cv, options.seed)
    fold_scores, histories, true, pred, probas = [], [], [], [], []
    for f in range(options.cv):
        start = time.perf_counter()
        train_rows, test_rows = fold_rows(ds, folds, f, options.augmented)
        fitted = fit(ds, train_rows, options)
        proba = fitted.predictor.predict_proba(**ds.subset(test_rows))
        s = scores(ds.y[test_rows], proba.argmax(1), ds.labels)
        s["ece"] = expected_calibration_error(proba, ds.y[test_rows])
        s.update(fold=f, speakers=sorted(set(ds.speakers[test_rows])),
                 gender_accuracy=gender_accuracy(fitted.predictor, ds, test_rows),
                 seconds=round(time.perf_counter() - start, 1))
        fold_scores.append(s)
        histories.append(fitted.history)
        true.append(ds.y[test_rows])
        pred.append(proba.argmax(1))
        probas.append(proba)
        progress(f"fold {f + 1}/{options.cv}: accuracy {s['accuracy']:.3f}  UAR {s['uar']:.3f}"
                 f"  ECE {s['ece']:.3f}  ({s['n']} clips, {s['seconds']:.0f} s)")
    held = list(zip(probas, true))
    true, proba = np.concatenate(true), np.concatenate(probas)
    pooled = scores(true, np.concatenate(pred), ds.labels)
    pooled.update(ece=expected_calibration_error(proba, true), ece_bins=ECE_BINS,
                  reliability=calibration_bins(proba, true),
                  ece_calibrated=expected_calibration_error(
                      np.concatenate(cross_calibrated(held)), true),
                  temperature=fit_temperature(proba, true))
    return {"folds": fold_scores, "summary": summarize_folds(fold_scores), "pooled": pooled,
            "histories": histories}


def cross_temperatures(held: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """For each fold of ``held[f] = (proba (n_f, K), y (n_f,))``, held-out probabilities
    and classes, the temperature fitted on the other folds' (:func:`fit_temperature`)."""
    out = []
    for f in range(len(held)):
        others = [h for g, h in enumerate(held) if g != f]
        out.append(fit_temperature(np.concatenate([p for p, _ in others]),
                                   np.concatenate([y for _, y in others])))
    return out


def cross_calibrated(held: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Each fold's held-out probabilities at the temperature of the other folds
    (:func:`cross_temperatures`): calibration scored on clips that did not choose it."""
    return [calibrated(proba, t) for (proba, _), t in zip(held, cross_temperatures(held))]


def leave_one_corpus_out(ds: Dataset, options: TrainOptions,
                         progress: Progress = _quiet) -> dict:
    """One fold per corpus: train on every other corpus, score the held-out one.

    A held-out corpus is scored on the classes it has: each clip gets the most probable
    of those classes, and the probabilities are renormalised over them for the ECE
    (:func:`~serfast.model.metrics.restrict`). Per corpus: :func:`scores` plus ``corpus``,
    ``classes`` (its classes), ``untrained`` (its classes that no training corpus has),
    ``unrestricted_accuracy`` (argmax over every class), ``ece``, ``reliability`` and
    ``seconds``, ``ece_calibrated`` (at the temperature fitted on the other corpora).
    ``summary``: the unweighted mean and std over corpora of accuracy, UAR, macro F1 and
    ECE (``mean_uar`` = the headline number); ``ece_calibrated`` their mean and
    ``temperature`` the one fitted on every held-out probability.
    """
    names = sorted(set(ds.corpora))
    if len(names) < 2:
        raise TrainError(f"--cv corpus needs rows of at least two corpora; "
                         f"{', '.join(names)} is the only one in these stores")
    per_corpus, histories, held = [], [], []
    row_corpus = ds.corpora[ds.source]  # augmented rows follow their source clip
    for name in names:
        start = time.perf_counter()
        held_out = row_corpus == name
        train_rows = np.flatnonzero(~held_out & (options.augmented | ~ds.augmented))
        test_rows = np.flatnonzero(held_out & ~ds.augmented)
        fitted = fit(ds, train_rows, options)
        proba = fitted.predictor.predict_proba(**ds.subset(test_rows))
        y = ds.y[test_rows]
        present = np.unique(y)
        answer = restrict(proba, present)
        s = scores(y, answer.argmax(1), ds.labels)
        untrained = sorted(set(present) - set(ds.y[train_rows]))
        s.update(corpus=name, classes=[ds.labels[k] for k in present],
                 untrained=[ds.labels[k] for k in untrained],
                 unrestricted_accuracy=float((proba.argmax(1) == y).mean()),
                 ece=expected_calibration_error(answer, y),
                 reliability=calibration_bins(answer, y),
                 speakers=int(len(np.unique(ds.speakers[test_rows]))),
                 seconds=round(time.perf_counter() - start, 1))
        per_corpus.append(s)
        histories.append(fitted.history)
        held.append((proba, y))
        note = f"; never trained on {', '.join(s['untrained'])}" if untrained else ""
        progress(f"held out {name}: accuracy {s['accuracy']:.3f}  UAR {s['uar']:.3f}  "
                 f"ECE {s['ece']:.3f}  ({s['n']} clips, {len(present)} classes, "
                 f"{s['seconds']:.0f} s{note})")
    for s, calibrated_proba, (_, y) in zip(per_corpus, cross_calibrated(held), held):
        s["ece_calibrated"] = expected_calibration_error(
            restrict(calibrated_proba, np.unique(y)), y)
    summary = summarize_folds(per_corpus)
    return {"corpora": per_corpus, "summary": summary, "mean_uar": summary["uar"]["mean"],
            "ece_bins": ECE_BINS, "histories": histories,
            "ece_calibrated": float(np.mean([s["ece_calibrated"] for s in per_corpus])),
            "temperature": fit_temperature(np.concatenate([p for p, _ in held]),
                                           np.concatenate([y for _, y in held]))}


def _sklearn_models(seed: int) -> dict:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return {"SVM (RBF, C=10)": lambda: SVC(C=10.0),
            "random forest (300 trees)": lambda: RandomForestClassifier(300, random_state=seed),
            "logistic regression": lambda: LogisticRegression(C=0.1, max_iter=3000)}


class _Features:
    """Baseline inputs of every row, computed once: ``values`` = the 168 store values +
    gender, globally standardised on the training rows; ``serfast`` = the serfast MLP
    input (pooled frame statistics + store values, per-speaker standardised, gender)."""

    def __init__(self, ds: Dataset, options: TrainOptions):
        self.ds = ds
        self.config = network_config(replace(options, network="serfast", norm=None), ds)
        self.block = stat_block(self.config, ds.spec, ds.values,
                                ds.frames if self.config.frames else None)

    def __call__(self, kind: str, train_rows: np.ndarray) -> tuple:
        """(x of the training rows, function rows -> x) for ``kind``."""
        ds = self.ds
        if kind == "values":
            x = np.nan_to_num(ds.values, nan=0.5)
            mean, std = x[train_rows].mean(0), x[train_rows].std(0) + 1e-8
            make = lambda rows: (x[rows] - mean) / std
        else:
            norm, gender = moments(self.block[train_rows]), fit_gender(ds, train_rows)
            make = lambda rows: np.hstack([
                standardize(self.block[rows], norm, ds.groups[rows]),
                gender_column(ds.values[rows], ds.spec, gender, ds.groups[rows])[:, None]])
        return make(train_rows), make


class _Comparison:
    """The cells of :func:`compare`, each cross-validated under the same speaker folds."""

    def __init__(self, ds: Dataset, options: TrainOptions, progress: Progress):
        self.ds, self.options, self.progress = ds, options, progress
        self.folds = speaker_folds(ds.speakers, options.cv, options.seed)
        self.features = _Features(ds, options)
        self.cells: list[dict] = []

    def run(self, name: str, augmented: bool,
            one_fold: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """Cross-validate one cell: ``one_fold(train rows, test rows)`` predicts classes;
        stops early when the projected time exceeds ``compare_limit``."""
        ds, cv, limit = self.ds, self.options.cv, self.options.compare_limit
        start, per_fold, note = time.perf_counter(), [], ""
        for f in range(cv):
            train_rows, test_rows = fold_rows(ds, self.folds, f, augmented)
            pred = one_fold(train_rows, test_rows)
            per_fold.append(scores(ds.y[test_rows], pred, ds.labels))
            projected = (time.perf_counter() - start) / (f + 1) * cv
            if f + 1 < cv and limit and projected > limit:
                note = (f"stopped after {f + 1} of {cv} folds: projected "
                        f"{projected / 60:.0f} min > limit {limit / 60:.0f} min")
                break
        self.record(name, augmented, per_fold, time.perf_counter() - start, note)

    def record(self, name: str, augmented: bool, per_fold: list[dict], seconds: float,
               note: str = "") -> None:
        """Add the cell of these fold scores and report it."""
        summary = summarize_folds(per_fold)
        self.cells.append({"name": name, "augmented": augmented,
                           **{k: summary[k] for k in ("accuracy", "uar")},
                           "folds": len(per_fold), "seconds": round(seconds, 1), "note": note})
        self.progress(f"compare: {name}, {'with' if augmented else 'without'} augmentation: "
                      f"accuracy {summary['accuracy']['mean']:.3f} ± "
                      f"{summary['accuracy']['std']:.3f}, UAR {summary['uar']['mean']:.3f} "
                      f"({seconds:.0f} s){'; ' + note if note else ''}")

    def network_fold(self, variant: TrainOptions, train_rows: np.ndarray,
                     test_rows: np.ndarray) -> np.ndarray:
        """Classes of the test rows by a network of ``variant`` fitted on the training rows."""
        fitted = fit(self.ds, train_rows, variant)
        return fitted.predictor.predict_proba(**self.ds.subset(test_rows)).argmax(1)

    def baseline_fold(self, make_model: Callable, kind: str, train_rows: np.ndarray,
                      test_rows: np.ndarray) -> np.ndarray:
        """Classes of the test rows by a scikit-learn model on the ``kind`` inputs."""
        x_train, make_x = self.features(kind, train_rows)
        return make_model().fit(x_train, self.ds.y[train_rows]).predict(make_x(test_rows))


def compare(ds: Dataset, options: TrainOptions, progress: Progress = _quiet,
            main: tuple[dict, float] | None = None) -> list[dict]:
    """The research question under the same speaker folds: scikit-learn baselines on the
    raw store values and on serfast's features, serfast's default network and the
    method's network (as published, and with serfast's per-speaker normalisation), each
    without and (if the stores hold augmented rows) with the
    augmented rows in training. ``main``: (cross_validate result, seconds) of ``options``,
    reused for that cell.

    One dict per cell: ``name``, ``augmented``, ``accuracy``/``uar`` ({mean, std} over
    the folds run), ``folds`` (run), ``seconds`` and ``note``. A cell whose projected CV
    time exceeds ``options.compare_limit`` seconds stops after the folds done so far
    and says so in ``note`` (its mean is then over fewer folds).
    """
    settings = [False, True] if ds.augmented.any() else [False]
    cmp = _Comparison(ds, options, progress)
    for kind in ("values", "serfast"):
        inputs = "store values (global z-score)" if kind == "values" else "serfast features"
        for name, make in _sklearn_models(options.seed).items():
            for augmented in settings:
                cmp.run(f"{name} on {inputs}", augmented,
                        partial(cmp.baseline_fold, make, kind))
    default = replace(options, network="serfast", extractor="conv1d", classifier="mlp",
                      norm=None)
    method = replace(options, network="method", extractor="conv1d", classifier="mlp",
                     norm=None, epochs=None, batch_size=None)
    for name, variant in (("serfast network", default),
                          ("method network (Conv1D + MLP, global norm)", method),
                          ("method network, per-speaker norm", replace(method, norm="speaker"))):
        for augmented in settings:
            if main is not None and augmented == options.augmented \
                    and replace(variant, compare_limit=0) == replace(options, compare_limit=0):
                cmp.record(name, augmented, main[0]["folds"], main[1])
            else:
                cmp.run(name, augmented,
                        partial(cmp.network_fold, replace(variant, augmented=augmented)))
    return cmp.cells


# ---------------------------------------------------------------- train / evaluate

def store_notes(spec, options: TrainOptions) -> list[str]:
    """One line for stores that serfast's default network does worse on than on
    :data:`~serfast.features.spec.STORE_SPEC`'s (``serfast extract``'s defaults): a set
    without the prosody columns, a crop instead of the whole clip, or no speaker
    embedding. Empty otherwise."""
    if options.network != "serfast":
        return []
    lacks = []
    if spec.name != STORE_SPEC.name:
        lacks.append(f"the {spec.name} set, not {STORE_SPEC.name}")
    if (spec.offset, spec.duration) != (STORE_SPEC.offset, STORE_SPEC.duration):
        lacks.append(f"a crop of {spec.duration:g} s from {spec.offset:g} s, not the whole clip")
    if STORE_SPEC.embedding and not spec.embedding:
        lacks.append("no speaker embedding")
    if not lacks:
        return []
    return [f"the stores hold {' and '.join(lacks)}: serfast's default network does better "
            f"within and across corpora on stores of serfast extract's defaults "
            f"(--features {STORE_SPEC.name} --offset {STORE_SPEC.offset:g} --duration "
            f"{STORE_SPEC.duration:g} --embedding; README, Training)"]


def _option(key: str, value) -> str:
    """The ``serfast extract`` option that sets the spec's ``key`` to ``value``."""
    if isinstance(value, bool):
        return f"--{'' if value else 'no-'}{key}"
    name = "features" if key == "name" else key.replace("_", "-")
    return f"--{name} {value:g}" if isinstance(value, float) else f"--{name} {value}"


def train(store_paths: list[str], model_dir: str, options: TrainOptions = TrainOptions(),
          compare_baselines: bool = False, progress: Progress = _quiet) -> dict:
    """Cross-validate (``options.cv`` > 0 speaker folds, or ``"corpus"``: leave one corpus
    out), optionally compare, then train the final model on every row and save it with its
    report in ``model_dir``. The final model's softmax temperature is the one fitted on
    the cross-validation's held-out probabilities (1 without cross-validation), so its
    confidences mean what they say on speakers (or corpora) it never heard. Returns the
    report dict."""
    from .report import write_report

    if options.network not in ("serfast", "method"):
        raise TrainError(f"unknown network {options.network!r}; use serfast or method")
    by_corpus = options.cv == "corpus"
    if not by_corpus and not (isinstance(options.cv, int) and options.cv >= 0):
        raise TrainError(f"--cv: use a number of speaker folds or 'corpus' (got {options.cv!r})")
    labels = resolve_classes(options.classes)
    check_model_dir(model_dir)
    ds = load_dataset(store_paths, labels, need_speakers=not by_corpus and options.cv != 0,
                      need_frames=options.network == "serfast" or options.extractor == "conv2d")
    start = time.perf_counter()
    report = {"stores": list(store_paths), "labels": labels, "options": vars(options).copy(),
              "notes": store_notes(ds.spec, options),
              "rows": int(len(ds.y)), "clips": int((~ds.augmented).sum()),
              "augmented_rows": int(ds.augmented.sum()), "left_out": ds.left_out,
              "speakers": int(len(np.unique(ds.speakers))),
              "corpora": {c: int(((ds.corpora == c) & ~ds.augmented).sum())
                          for c in sorted(set(ds.corpora))},
              "class_counts": {lab: int(((ds.y == k) & ~ds.augmented).sum())
                               for k, lab in enumerate(labels)}}
    if compare_baselines and (by_corpus or not options.cv):
        raise TrainError("--compare needs speaker cross-validation (--cv K)")
    if by_corpus:
        report["loco"] = leave_one_corpus_out(ds, options, progress)
        report["loco_seconds"] = round(time.perf_counter() - start, 1)
    elif options.cv:
        report["cv"] = cross_validate(ds, options, progress)
        report["cv_seconds"] = round(time.perf_counter() - start, 1)
    if compare_baselines:
        report["compare"] = compare(ds, options, progress,
                                    (report["cv"], report["cv_seconds"]))
        report["compare_seconds"] = round(time.perf_counter() - start - report["cv_seconds"], 1)
    all_rows = np.flatnonzero(options.augmented | ~ds.augmented)
    final = fit(ds, all_rows, options)
    held_out = report["cv"]["pooled"] if "cv" in report else report.get("loco")
    report["temperature"] = held_out["temperature"] if held_out else 1.0
    final.predictor.config = replace(final.predictor.config, temperature=report["temperature"])
    report["final_history"] = final.history
    report["seconds"] = round(time.perf_counter() - start, 1)
    originals = np.flatnonzero(~ds.augmented)
    save_model(model_dir, final.predictor, final.network, final.member_weights,
               {"training": {k: report[k] for k in ("stores", "rows", "clips", "speakers")}},
               clips=clip_ids(ds.paths[originals], ds.values[originals]),
               write_more=lambda folder: write_report(folder, report))
    progress(f"saved the model trained on {len(all_rows)} rows -> {model_dir}")
    return report


def evaluate(model_dir: str, store_paths: list[str]) -> dict:
    """Score a saved model on the original clips of ``store_paths`` whose label it knows.

    Per-speaker normalisation groups rows by speaker (by file when the store has none).
    Returns :func:`scores` plus ``ece`` (expected calibration error, 15 bins),
    ``left_out`` (labelled clips of unknown classes), ``trained_on`` (how many of the
    scored clips the model was trained on; None if the model does not record its training
    clips) and ``predictions`` (path, true, predicted, confidence, probabilities).
    """
    model_dir = model_folder(model_dir)  # "default": the model shipped inside the package
    predictor = load_predictor(model_dir)
    ds = load_dataset(store_paths, predictor.labels, need_speakers=False,
                      need_frames=predictor.needs_frames)
    if ds.spec != predictor.spec:
        want, got = predictor.spec.to_dict(), ds.spec.to_dict()
        differ = ", ".join(_option(k, want[k]) for k in want if want[k] != got.get(k))
        raise TrainError(f"the store was extracted with another feature spec than the "
                         f"model's: re-extract with {differ}")
    rows = np.flatnonzero(~ds.augmented)
    proba = predictor.predict_proba(**ds.subset(rows))
    pred = proba.argmax(1)
    result = scores(ds.y[rows], pred, predictor.labels)
    result["ece"] = expected_calibration_error(proba, ds.y[rows])
    result["left_out"] = ds.left_out
    model_clips = load_clip_ids(model_dir)
    result["trained_on"] = None if model_clips is None else int(
        trained_on(model_clips, clip_ids(ds.paths[rows], ds.values[rows])).sum())
    result["predictions"] = [
        {"path": ds.paths[i], "true": predictor.labels[ds.y[i]],
         "predicted": predictor.labels[p], "confidence": float(pr[p]),
         **{f"p_{lab}": float(v) for lab, v in zip(predictor.labels, pr)}}
        for i, p, pr in zip(rows, pred, proba)]
    return result
