"""Tests of serfast train/evaluate on a tiny synthetic store (no corpus, no GPU)."""

import csv
import glob
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from serfast import TrainOptions, train
from serfast.demo import make_demo_corpus
from serfast.extract import ExtractOptions, extract
from serfast.io import open_store
from serfast.model import ModelError, TrainError, load_predictor, scores
from serfast.model.inputs import standardize
from serfast.model.report import compare_table
from serfast.model.train import compare, fold_rows, load_dataset, resolve_classes, speaker_folds
from serfast_cli.main import main

TINY = dict(cv=2, ensemble=1, epochs=3, seed=7)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A 6-speaker demo store with frames, and the same with one noise copy per clip."""
    root = tmp_path_factory.mktemp("train")
    corpus = str(root / "corpus")
    make_demo_corpus(corpus, speakers=6, takes=2)
    plain, augmented = str(root / "plain.npy"), str(root / "aug.npy")
    extract(corpus, plain, ExtractOptions(frames=True, workers=1))
    extract(corpus, augmented, ExtractOptions(frames=True, workers=1, augment=("noise",)))
    return {"root": root, "plain": plain, "aug": augmented}


@pytest.fixture(scope="module")
def trained(stores):
    """A tiny serfast model trained with 2-fold CV on the augmented store."""
    model_dir = str(stores["root"] / "model")
    report = train([stores["aug"]], model_dir, TrainOptions(**TINY))
    return model_dir, report


def test_scores_known_example():
    s = scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    assert s["accuracy"] == 0.75
    assert s["uar"] == pytest.approx(0.75)  # class c is absent: left out of the macro mean
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert s["per_class"]["b"]["precision"] == pytest.approx(2 / 3)


def test_folds_whole_speakers_and_augmented_rows_follow_their_source(stores):
    ds = load_dataset([stores["aug"]], resolve_classes("seed6"))
    assert ds.augmented.sum() == (~ds.augmented).sum()
    folds = speaker_folds(ds.speakers, 3, seed=1)
    assert np.array_equal(folds, speaker_folds(ds.speakers, 3, seed=1))
    for f in range(3):
        train_rows, test_rows = fold_rows(ds, folds, f, augmented=True)
        assert not set(ds.speakers[train_rows]) & set(ds.speakers[test_rows])
        assert not ds.augmented[test_rows].any()
        test_sources = set(test_rows)
        assert not any(ds.source[i] in test_sources for i in train_rows)
        assert ds.augmented[train_rows].any()
    assert np.array_equal(folds[ds.source], folds)


def test_standardize_shrinks_small_groups_to_the_prior():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, (200, 3))
    z = standardize(x, {"mean": np.full(3, 4.0), "var": np.full(3, 4.0)}, np.zeros(200, int))
    assert np.allclose(z.mean(0), 0, atol=0.05) and np.allclose(z.std(0), 1, atol=0.05)
    prior = {"mean": np.zeros(3), "var": np.ones(3)}
    single = standardize(np.array([[1.0, 2.0, 3.0]]), prior, np.array([0]))
    x1 = np.array([1.0, 2.0, 3.0])  # 4 prior rows + the row itself:
    mu, var = x1 / 5, ((0.8 * x1) ** 2 + 4 * (1 + (x1 / 5) ** 2)) / 5
    assert np.allclose(single[0], (x1 - mu) / np.sqrt(var), atol=1e-5)


def test_resolve_classes():
    assert resolve_classes("seed6") == ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    assert resolve_classes("sad,angry") == ["sad", "angry"]
    with pytest.raises(TrainError):
        resolve_classes("sad,bored")


def test_train_writes_model_and_report(trained):
    model_dir, report = trained
    for name in ("model.json", "network.keras", "norm.npz", "weights.npz", "report.md",
                 "report.json", "confusion.png", "folds.png", "curves.png"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert len(report["cv"]["folds"]) == 2
    assert sum(f["n"] for f in report["cv"]["folds"]) == report["clips"] == 72
    assert report["augmented_rows"] == 72
    with open(os.path.join(model_dir, "report.json")) as fh:
        saved = json.load(fh)
    assert saved["cv"]["summary"]["accuracy"]["mean"] == report["cv"]["summary"]["accuracy"]["mean"]
    assert all(f["gender_accuracy"] is not None for f in saved["cv"]["folds"])


def test_same_seed_same_numbers(stores, trained, tmp_path):
    _, first = trained
    again = train([stores["aug"]], str(tmp_path / "again"), TrainOptions(**TINY))
    strip = lambda folds: [{k: v for k, v in f.items() if k != "seconds"} for f in folds]
    assert strip(again["cv"]["folds"]) == strip(first["cv"]["folds"])
    assert again["final_history"] == first["final_history"]


def test_numpy_forward_matches_safe_keras_load(stores, trained):
    model_dir, _ = trained
    store = open_store(stores["plain"])
    frames = [store.row_frames(i) for i in range(len(store.rows))]
    groups = np.array([r["speaker"] for r in store.rows])
    fast = load_predictor(model_dir)
    slow = load_predictor(model_dir, use_keras=True)  # network.keras with safe_mode=True
    p_fast = fast.predict_proba(store.values, frames, groups)
    p_slow = slow.predict_proba(store.values, frames, groups)
    assert p_fast.shape == (len(store.rows), 6)
    assert np.allclose(p_fast.sum(1), 1, atol=1e-5)
    assert np.allclose(p_fast, p_slow, atol=1e-4)
    assert fast.needs_frames and fast.labels == resolve_classes("seed6")


def test_unknown_gender_is_filled_by_the_gender_classifier(stores, trained):
    predictor = load_predictor(trained[0])
    store = open_store(stores["plain"])
    values = np.array(store.values)
    frames = [store.row_frames(i) for i in range(len(values))]
    truth = values[:, -1].copy()
    assert np.array_equal(predictor.gender.predict(values, None)[:4],
                          predictor.gender.predict(values[:4]))
    values[:, -1] = np.nan
    p = predictor.predict_proba(values, frames)  # groups None: one group
    assert np.isfinite(p).all()
    guessed = predictor.gender.predict(values, np.array([r["speaker"] for r in store.rows]))
    assert (guessed == truth).mean() > 0.8


def test_evaluate_json_predictions_and_label_subset(stores, tmp_path):
    model_dir = str(tmp_path / "three")
    train([stores["plain"]], model_dir,
          TrainOptions(classes="neutral,happy,sad", cv=0, ensemble=1, epochs=2))
    out = str(tmp_path / "pred.csv")
    result = CliRunner().invoke(main, ["evaluate", model_dir, stores["aug"], "--json",
                                       "--predictions", out])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"accuracy", "uar", "per_class", "confusion", "labels", "n"} <= set(data)
    assert data["labels"] == ["neutral", "happy", "sad"]
    assert data["n"] == 36 and data["left_out"] == 36  # augmented rows are never scored
    assert data["trained_on"] == 36  # the plain store's clips are the aug store's originals
    assert "the model was trained on 36 of these 36 clips" in result.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 36
    assert set(rows[0]) == {"path", "true", "predicted", "confidence",
                            "p_neutral", "p_happy", "p_sad"}
    assert all(r["true"] in data["labels"] for r in rows)
    text = CliRunner().invoke(main, ["evaluate", model_dir, stores["plain"]])
    assert "36 clips scored (36 of other classes left out)" in text.output


def test_method_network_trains_and_loads_safely(stores, tmp_path):
    model_dir = str(tmp_path / "method")
    report = train([stores["plain"]], model_dir,
                   TrainOptions(network="method", classifier="lstm", cv=0, epochs=1))
    assert report["rows"] == 72 and not os.path.exists(os.path.join(model_dir, "weights.npz"))
    predictor = load_predictor(model_dir)
    assert not predictor.needs_frames
    store = open_store(stores["plain"])
    assert predictor.predict_proba(store.values).shape == (72, 6)


def test_method_conv2d_extractor_trains_saves_and_loads(stores, tmp_path):
    model_dir = str(tmp_path / "conv2d")
    report = train([stores["plain"]], model_dir,
                   TrainOptions(network="method", extractor="conv2d", cv=0, epochs=2))
    assert report["rows"] == 72 and report["final_history"][0]["loss"]
    assert len(report["final_history"][0]["loss"]) <= 2
    predictor = load_predictor(model_dir)  # network.keras with safe_mode=True
    assert predictor.needs_frames and predictor.config.extractor == "conv2d"
    store = open_store(stores["plain"])
    frames = [store.row_frames(i) for i in range(len(store.rows))]
    p = predictor.predict_proba(store.values, frames)
    assert p.shape == (72, 6) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.allclose(load_predictor(model_dir).predict_proba(store.values, frames), p,
                       atol=1e-6)
    with pytest.raises(ModelError, match="frame-level"):
        predictor.predict_proba(store.values)


def test_compare_cells_with_and_without_augmentation(stores, trained):
    _, report = trained
    ds = load_dataset([stores["aug"]], resolve_classes("seed6"))
    options = TrainOptions(**TINY, compare_limit=1e-6)  # every other cell stops after fold 1
    cells = compare(ds, options, main=(report["cv"], report["cv_seconds"]))
    names = list(dict.fromkeys(c["name"] for c in cells))
    assert len(names) == 9 and "serfast network" in names
    assert len(cells) == 18 and {c["augmented"] for c in cells} == {False, True}
    reused = next(c for c in cells if c["name"] == "serfast network" and c["augmented"])
    assert reused["folds"] == 2 and not reused["note"]
    assert reused["accuracy"] == report["cv"]["summary"]["accuracy"]
    stopped = [c for c in cells if c is not reused]
    assert all(c["folds"] == 1 and "stopped after 1 of 2 folds" in c["note"] for c in stopped)
    table = "\n".join(compare_table(cells))
    assert "accuracy, + aug." in table and table.count("stopped after") == 17


@pytest.mark.parametrize("args, message", [
    (["--classes", "sad,bored"], "--classes"),
    (["--cv", "9"], "--cv 9"),
])
def test_cli_errors_are_one_line(stores, tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", stores["plain"], "--model",
                                       str(tmp_path / "m"), *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_evaluate_rejects_a_non_model(stores, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path), stores["plain"]])
    assert result.exit_code == 1 and "not a serfast model directory" in result.output


# --- calibration, per-corpus class weights, leave one corpus out ---------------------------


def test_expected_calibration_error_known_example():
    from serfast.model.metrics import calibration_bins, expected_calibration_error

    # confidences 0.9, 0.75, 0.62, 0.71 fall in four of the 15 bins; 3 of 4 are correct
    proba = np.array([[0.9, 0.1], [0.75, 0.25], [0.62, 0.38], [0.29, 0.71]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(proba, y) == pytest.approx(
        (0.1 + 0.75 + 0.38 + 0.29) / 4)
    # two rows in one bin (13/15, 14/15]: one right, one wrong -> |0.5 - 0.91|
    proba = np.array([[0.9, 0.1], [0.08, 0.92]])
    assert expected_calibration_error(proba, np.array([0, 0])) == pytest.approx(0.41)
    (b,) = calibration_bins(proba, np.array([0, 0]))
    assert (b["lo"], b["hi"], b["n"], b["accuracy"]) == (13 / 15, 14 / 15, 2, 0.5)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0  # sure and right
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)) == 0.0


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at():
    """Labels drawn from calibrated(p, 2): fit_temperature on p finds T near 2; each fold's
    cross-calibrated probabilities use the temperature of the other folds only."""
    from serfast.model.predictor import calibrated, fit_temperature
    from serfast.model.train import cross_calibrated

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(4, 0.5), size=20000)
    truth = calibrated(proba, 2.0).astype(np.float64)
    y = (rng.random(len(proba))[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    assert fit_temperature(proba, y) == pytest.approx(2.0, rel=0.05)
    assert fit_temperature(truth, y) == pytest.approx(1.0, rel=0.05)
    held = [(proba[:10000], y[:10000]), (truth[10000:], y[10000:])]
    first, second = cross_calibrated(held)
    np.testing.assert_array_equal(first, calibrated(proba[:10000],
                                                    fit_temperature(*held[1])))
    np.testing.assert_array_equal(second, calibrated(truth[10000:],
                                                     fit_temperature(*held[0])))


def test_restrict_renormalises_over_the_kept_classes():
    from serfast.model.metrics import restrict

    p = restrict(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]), np.array([1, 2]))
    assert np.allclose(p, [[0, 0.6, 0.4], [0, 1 / 9, 8 / 9]])
    assert p.argmax(1).tolist() == [1, 2]


def test_sample_weights_balance_classes_within_each_corpus():
    from serfast.model.train import sample_weights

    y = np.array([0, 0, 0, 1, 2, 2])
    one = sample_weights(y, np.array(["a"] * 6))
    assert np.allclose(one, [6 / 9, 6 / 9, 6 / 9, 2, 1, 1])  # n / (K * n_k)
    # corpus b lacks class 2; its rows split its total weight over classes 0 and 1 only
    y = np.array([0, 1, 2, 0, 0, 0, 1])
    corpora = np.array(["a", "a", "a", "b", "b", "b", "b"])
    w = sample_weights(y, corpora)
    assert np.allclose(w[:3], 1) and w[:3].sum() == pytest.approx(3)
    assert np.allclose(w[3:], [4 / 6, 4 / 6, 4 / 6, 2]) and w[3:].sum() == pytest.approx(4)
    for c in ("a", "b"):  # every class a corpus has gets the same share of it
        rows = corpora == c
        totals = np.bincount(y[rows], weights=w[rows])
        assert np.allclose(totals[totals > 0], totals[totals > 0][0])


@pytest.fixture(scope="module")
def two_corpora(stores):
    """The plain store, its rows split into two corpora by the dataset column: alpha
    (speakers 1-4, all six classes) and beta (speakers 5-6, disgust unlabelled)."""
    import shutil

    base = str(stores["root"] / "two")
    src = stores["plain"][:-4]
    for ext in (".npy", ".json", ".frames.npy"):
        shutil.copy(src + ext, base + ext)
    with open(src + ".csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        beta = r["speaker"] in ("ravdess_05", "ravdess_06")
        r["dataset"] = "beta" if beta else "alpha"
        if beta and r["label"] == "disgust":
            r["label"] = ""
    with open(base + ".csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return base + ".npy"


def test_corpus_of_a_row_is_its_dataset_or_its_store_name(stores, two_corpora, tmp_path):
    ds = load_dataset([two_corpora], resolve_classes("seed6"))
    assert sorted(set(ds.corpora)) == ["alpha", "beta"]
    assert set(ds.speakers[ds.corpora == "beta"]) == {"ravdess_05", "ravdess_06"}
    src, dst = stores["plain"][:-4], str(tmp_path / "emoes")
    import shutil
    for ext in (".npy", ".json", ".frames.npy"):
        shutil.copy(src + ext, dst + ext)
    with open(src + ".csv") as fh, open(dst + ".csv", "w") as out:
        out.write(fh.read().replace(",ravdess,", ",manifest,"))
    ds = load_dataset([dst + ".npy", stores["plain"]], resolve_classes("seed6"))
    assert sorted(set(ds.corpora)) == ["emoes", "ravdess"]


def test_leave_one_corpus_out(two_corpora, tmp_path):
    model_dir = str(tmp_path / "loco")
    result = CliRunner().invoke(main, ["train", two_corpora, "--model", model_dir,
                                       "--cv", "corpus", "--ensemble", "1", "--epochs", "3",
                                       "--seed", "7"])
    assert result.exit_code == 0, result.output
    with open(os.path.join(model_dir, "report.json")) as fh:
        report = json.load(fh)
    loco = report["loco"]
    alpha, beta = loco["corpora"]
    assert (alpha["corpus"], beta["corpus"]) == ("alpha", "beta")
    assert (alpha["n"], beta["n"]) == (48, 20) and report["corpora"] == {"alpha": 48, "beta": 20}
    assert alpha["speakers"] == 4 and beta["speakers"] == 2
    labels = report["labels"]
    assert beta["classes"] == [lab for lab in labels if lab != "disgust"]
    assert alpha["untrained"] == ["disgust"] and beta["untrained"] == []
    k = labels.index("disgust")
    assert all(row[k] == 0 for row in beta["confusion"])  # restricted to beta's classes
    assert sum(map(sum, beta["confusion"])) == 20
    for c in (alpha, beta):
        assert 0 <= c["ece"] <= 1 and 0 <= c["uar"] <= 1
        assert sum(b["n"] for b in c["reliability"]) == c["n"]
    assert loco["mean_uar"] == pytest.approx((alpha["uar"] + beta["uar"]) / 2)
    assert loco["summary"]["ece"]["mean"] == pytest.approx((alpha["ece"] + beta["ece"]) / 2)
    assert "cv" not in report and os.path.exists(os.path.join(model_dir, "model.json"))
    assert all(0 <= c["ece_calibrated"] <= 1 for c in (alpha, beta))
    assert loco["ece_calibrated"] == pytest.approx((alpha["ece_calibrated"]
                                                    + beta["ece_calibrated"]) / 2)
    assert report["temperature"] == loco["temperature"] > 0
    assert load_predictor(model_dir).config.temperature == pytest.approx(loco["temperature"])
    with open(os.path.join(model_dir, "report.md")) as fh:
        md = fh.read()
    assert "## Leave one corpus out" in md and "never trained: disgust" in md
    assert "ECE, calibrated" in md and f"{loco['temperature']:.3f}" in md
    assert f"**{loco['mean_uar']:.3f}**" in md and "Confusion matrix of beta" in md
    out = result.output
    assert f"mean UAR {loco['mean_uar']:.3f} over 2 corpora" in out
    assert "held out alpha:" in out and "beta: confusion" in out
    assert "Traceback" not in out


def test_leave_one_corpus_out_needs_two_corpora(stores, tmp_path):
    result = CliRunner().invoke(main, ["train", stores["plain"], "--model",
                                       str(tmp_path / "m"), "--cv", "corpus"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "at least two corpora; ravdess is the only one" in result.output
    assert len(result.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(main, ["train", stores["plain"], "--model", str(tmp_path / "m"),
                                    "--cv", "speakers"])
    assert bad.exit_code == 2 and "'corpus'" in bad.output


def test_speaker_cv_and_evaluate_report_calibration(stores, trained):
    model_dir, report = trained
    cv = report["cv"]
    assert all(0 <= f["ece"] <= 1 for f in cv["folds"])
    assert cv["summary"]["ece"]["mean"] == pytest.approx(np.mean([f["ece"] for f in cv["folds"]]))
    assert cv["pooled"]["ece_bins"] == 15
    assert sum(b["n"] for b in cv["pooled"]["reliability"]) == report["clips"]
    with open(os.path.join(model_dir, "report.md")) as fh:
        assert "expected calibration error" in fh.read()
    # the saved model runs at the temperature fitted on the folds' held-out probabilities
    t = cv["pooled"]["temperature"]
    assert 0 < t and report["temperature"] == t
    assert load_predictor(model_dir).config.temperature == pytest.approx(t)
    assert 0 <= cv["pooled"]["ece_calibrated"] <= 1
    result = CliRunner().invoke(main, ["evaluate", model_dir, stores["plain"], "--json"])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.stdout)["ece"] <= 1


# --- the model folder: written whole, never over what serfast did not write ----------------


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(folder).iterdir())}


def test_a_failed_save_leaves_the_old_model_as_it_was(stores, trained, tmp_path, monkeypatch):
    import serfast.model.report

    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    before = _snapshot(model_dir)

    def crash(folder, report):  # dies after network.keras, norm.npz and weights.npz
        assert {"network.keras", "norm.npz", "weights.npz"} <= set(os.listdir(folder))
        raise KeyboardInterrupt

    monkeypatch.setattr(serfast.model.report, "write_report", crash)
    with pytest.raises(KeyboardInterrupt):
        train([stores["plain"]], str(model_dir), TrainOptions(cv=0, ensemble=1, epochs=1))
    assert _snapshot(model_dir) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no half-written sibling left
    monkeypatch.undo()
    train([stores["plain"]], str(model_dir), TrainOptions(cv=0, ensemble=1, epochs=1))
    after = _snapshot(model_dir)
    assert after["norm.npz"] != before["norm.npz"] and "folds.png" not in after
    assert json.loads(after["model.json"])["files"] == sorted(after)
    assert sorted(os.listdir(tmp_path)) == ["model"]


@pytest.mark.parametrize("foreign", ["notes.txt", None])
def test_a_folder_serfast_did_not_write_is_never_replaced(stores, trained, tmp_path, foreign):
    model_dir = tmp_path / "model"
    if foreign:  # a serfast model with a file of the user's in it
        shutil.copytree(trained[0], model_dir)
        (model_dir / foreign).write_text("mine")
    else:  # a folder of the user's
        model_dir.mkdir()
        (model_dir / "data.csv").write_text("mine")
    before = _snapshot(model_dir)
    result = CliRunner().invoke(main, ["train", stores["plain"], "--model", str(model_dir),
                                       "--cv", "2", "--epochs", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1  # refused before any fold
    assert ("serfast did not write (notes.txt)" if foreign else "is not a serfast model folder"
            ) in result.output
    assert _snapshot(model_dir) == before and sorted(os.listdir(tmp_path)) == ["model"]


def test_an_unwritable_model_folder_fails_before_cross_validation(stores, tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["train", stores["plain"], "--model",
                                       str(tmp_path / "file" / "model"), "--cv", "2"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot write the model to {tmp_path / 'file' / 'model'}: "
        f"{tmp_path / 'file'} is a file"]


def _copy_store(store, folder):
    folder.mkdir()
    stem = store[:-len(".npy")]
    for path in glob.glob(stem + ".*"):
        shutil.copy(path, folder)
    return str(folder / os.path.basename(store))


@pytest.mark.parametrize("damage, message", [
    ("store json", "damaged serfast store"),
    ("norm.npz", "is an incomplete model: norm.npz is missing"),
    ("weights.npz", "is an incomplete model: weights.npz is missing"),
    ("predictions folder", "its folder does not exist"),
])
def test_evaluate_errors_are_one_line(stores, trained, tmp_path, damage, message):
    model_dir, store = tmp_path / "model", stores["plain"]
    shutil.copytree(trained[0], model_dir)
    args = []
    if damage == "store json":
        store = _copy_store(store, tmp_path / "store")
        with open(store[:-len(".npy")] + ".json", "r+") as fh:
            fh.truncate(40)
    elif damage == "predictions folder":
        args = ["--predictions", str(tmp_path / "missing" / "p.csv")]
    else:
        os.remove(model_dir / damage)
    result = CliRunner().invoke(main, ["evaluate", str(model_dir), store, *args])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line, = result.output.strip().splitlines()
    assert line.startswith("Error: ") and message in line


def test_duplicate_classes_are_refused():
    with pytest.raises(TrainError, match="names sad more than once"):
        resolve_classes("sad,sad")
    with pytest.raises(TrainError, match="names sad more than once"):
        resolve_classes("happy, sad,sad")


@pytest.fixture(scope="module")
def label_folders(tmp_path_factory):
    """A folder-per-label corpus (no speakers): happy/ and sad/, 6 clips each."""
    from serfast.demo import synth_clip

    root = tmp_path_factory.mktemp("folders")
    for emotion in ("happy", "sad"):
        (root / "corpus" / emotion).mkdir(parents=True)
        for k in range(6):
            sf.write(root / "corpus" / emotion / f"{k}.wav", synth_clip(emotion, k + 1, k),
                     22050, subtype="PCM_16")
    store = str(root / "folders.npy")
    extract(str(root / "corpus"), store, ExtractOptions(frames=True, workers=1))
    return root, store


def test_a_corpus_without_speakers_trains_without_cross_validation(label_folders):
    root, store = label_folders
    report = train([store], str(root / "model"),
                   TrainOptions(classes="happy,sad", cv=0, ensemble=1, epochs=2))
    assert report["clips"] == 12 and "cv" not in report and report["temperature"] == 1.0
    assert load_predictor(str(root / "model")).labels == ["happy", "sad"]
    assert load_predictor(str(root / "model")).config.temperature == 1.0  # nothing held out
    result = CliRunner().invoke(main, ["train", store, "--model", str(root / "m2"),
                                       "--classes", "happy,sad", "--cv", "2"])
    assert result.exit_code == 1
    line, = result.output.strip().splitlines()
    assert "has no speaker" in line and "--cv 0" in line


def test_plots_show_whole_folds_the_mean_and_which_network_each_curve_is(monkeypatch, tmp_path):
    import serfast.model.report as model_report

    figures = {}
    monkeypatch.setattr(model_report, "_save",
                        lambda fig, folder, name: figures.setdefault(name, fig) and name)
    hist = {"loss": [1.0, 0.6, 0.4, 0.3]}
    report = {"labels": ["happy", "sad"], "options": {"network": "serfast", "ensemble": 2},
              "cv": {"pooled": {"confusion": [[3, 1], [0, 4]]},
                     "folds": [{"accuracy": a} for a in (0.8, 0.9, 0.85)],
                     "histories": [[hist] * 4] * 3}}
    assert model_report._plots(str(tmp_path), report) == ["confusion.png", "folds.png",
                                                          "curves.png"]
    folds = figures["folds.png"].axes[0]
    assert list(folds.get_xticks()) == [1, 2, 3]
    mean, = folds.lines
    assert mean.get_ydata()[0] == pytest.approx(0.85)
    assert mean.get_zorder() > max(bar.get_zorder() for bar in folds.patches)
    assert folds.get_ylim()[1] > 1  # room for the legend above the bars
    curves = figures["curves.png"].axes[0]
    assert [t.get_text() for t in curves.get_legend().get_texts()] == [
        "fold 1", "fold 2", "fold 3", "statistics MLP", "frame CNN"]
    assert {line.get_linestyle() for line in curves.lines} == {"-", "--"}


# --- the default model ---------------------------------------------------------------------


def test_default_names_the_shipped_model_wherever_a_model_folder_is_read(
        stores, trained, tmp_path, monkeypatch):
    import soundfile as sf

    import serfast.model.saved as saved
    from serfast.demo import synth_clip

    model_dir, _ = trained
    by_path = CliRunner().invoke(main, ["evaluate", model_dir, stores["plain"], "--json"])
    monkeypatch.setattr(saved, "shipped_model", lambda name="default": model_dir)
    by_name = CliRunner().invoke(main, ["evaluate", "default", stores["plain"], "--json"])
    assert by_name.exit_code == 0, by_name.output
    assert json.loads(by_name.stdout) == json.loads(by_path.stdout)
    assert load_predictor("default").labels == load_predictor(model_dir).labels
    call = tmp_path / "call.wav"
    sf.write(str(call), np.concatenate([np.zeros(8000), synth_clip("sad", 3, 0, 22050, 3.0),
                                        np.zeros(8000)]), 22050)
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", str(call), "--out", str(out),
                                       "--workers", "1", "--quiet"])  # no --model
    assert result.exit_code == 0, result.output
    assert "model: default (1 recording is sampled above 8000 Hz)" in result.output
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) >= 1


def test_default_without_a_shipped_model_is_one_line(stores, tmp_path, monkeypatch):
    import serfast.model.saved as saved

    monkeypatch.setattr(saved, "shipped_model", lambda name="default": str(tmp_path / name))
    for args in (["evaluate", "default", stores["plain"]],
                 ["predict", stores["root"] / "corpus", "--out", tmp_path / "l.csv"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "no default model" in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_linear_members_are_a_logistic_regression_saved_and_run_in_numpy(stores, tmp_path):
    """``--linear`` adds logistic-regression members: their weights are scikit-learn's fit
    on the same standardised statistics, the NumPy forward pass equals the safe Keras
    load, and a model of linear members only trains too."""
    from sklearn.linear_model import LogisticRegression

    from serfast.model.inputs import network_inputs
    from serfast.model.train import fit_norm, network_config, sample_weights

    model_dir = str(tmp_path / "lin")
    train([stores["plain"]], model_dir, TrainOptions(cv=0, ensemble=0, linear=1, seed=3))
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    assert meta["config"]["members"] == ["linear"]
    store = open_store(stores["plain"])
    frames = [store.row_frames(i) for i in range(len(store.rows))]
    groups = np.array([r["speaker"] for r in store.rows])
    fast, slow = load_predictor(model_dir), load_predictor(model_dir, use_keras=True)
    p_fast = fast.predict_proba(store.values, frames, groups)
    assert np.allclose(p_fast, slow.predict_proba(store.values, frames, groups), atol=1e-5)
    ds = load_dataset([stores["plain"]], resolve_classes("seed6"), need_frames=True)
    rows = np.arange(len(ds.y))
    opts = TrainOptions(cv=0, ensemble=0, linear=1, seed=3)
    config = network_config(opts, ds)
    x = network_inputs(config, fit_norm(config, ds, rows), ds.spec, **ds.subset(rows),
                       gender=None)["stats"]
    lr = LogisticRegression(C=opts.linear_c, max_iter=3000).fit(
        x, ds.y, sample_weight=sample_weights(ds.y, ds.corpora))
    assert (lr.predict_proba(x).argmax(1) == fast.predict_proba(**ds.subset(rows)).argmax(1)).mean() > 0.95
    both = str(tmp_path / "both")
    train([stores["plain"]], both, TrainOptions(cv=0, ensemble=1, linear=1, epochs=3, seed=3))
    assert json.load(open(os.path.join(both, "model.json")))["config"]["members"] == ["stats", "linear"]
    with pytest.raises(TrainError, match="at least one member"):
        train([stores["plain"]], str(tmp_path / "none"), TrainOptions(cv=0, ensemble=0))


def test_cli_sequence_and_stats_options_reach_the_saved_model(stores, tmp_path):
    """``--sequence`` adds as many Conv1D sequence members as ``--ensemble``; ``--stats all``
    pools every log-mel band; the model predicts from the store."""
    model_dir = str(tmp_path / "seq")
    result = CliRunner().invoke(main, ["train", stores["plain"], "--model", model_dir,
                                       "--cv", "0", "--ensemble", "1", "--epochs", "2",
                                       "--sequence", "--stats", "all", "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.load(open(os.path.join(model_dir, "model.json")))["config"]
    assert config["members"] == ["stats", "seq"] and config["stats"] == "all"
    store = open_store(stores["plain"])
    frames = [store.row_frames(i) for i in range(len(store.rows))]
    probs = load_predictor(model_dir).predict_proba(store.values, frames)
    assert probs.shape == (len(store.rows), 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
