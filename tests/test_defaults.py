"""The defaults give the best model: `serfast extract` stores the seed and prosody
columns of whole clips, with frames unless --no-frames; serfast's default network refuses
a store without frames in one line and notes, in one line, a store of another set or a
crop; a float16 frames file reads as float32, and clips a corpus labels outside serfast's
emotions are reported."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from serfast.demo import synth_clip
from serfast.features.spec import STORE_SPEC, FeatureSpec
from serfast.io.store import open_store
from serfast.model.train import TrainOptions, load_dataset, store_notes
from serfast_cli.main import main


@pytest.fixture(scope="module")
def emodb(tmp_path_factory):
    """Three clips named as EmoDB names them: angry, boredom (L) and happy."""
    folder = tmp_path_factory.mktemp("emodb") / "wav"
    folder.mkdir()
    for name, emotion, speaker in (("03a01Wa", "angry", 1), ("03a01La", "neutral", 1),
                                   ("08a01Fa", "happy", 2)):
        sf.write(str(folder / f"{name}.wav"), synth_clip(emotion, speaker, 0, 22050, 3.5), 22050)
    return folder


@pytest.fixture(scope="module")
def stores(emodb, tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    out = {}
    for name, extra in (("default", []), ("plain", ["--no-frames"]),
                        ("method", ["--features", "seed", "--offset", "0.6", "--duration", "2.5"])):
        path = root / f"{name}.npy"
        res = CliRunner().invoke(main, ["extract", str(emodb), str(path), "--workers", "1",
                                        "--quiet", *extra])
        assert res.exit_code == 0, res.output
        out[name] = (path, res.output)
    return out


def test_extract_stores_frames_unless_told_not_to(stores):
    default, plain = stores["default"][0], stores["plain"][0]
    assert default.with_suffix(".frames.npy").exists()
    assert not plain.with_suffix(".frames.npy").exists()
    assert open_store(str(default)).frames is not None
    assert open_store(str(plain)).frames is None


def test_extract_defaults_to_the_whole_clips_seed_and_prosody_columns(stores):
    store = open_store(str(stores["default"][0]))
    assert store.spec == STORE_SPEC == FeatureSpec(name="all", offset=0.0, duration=0.0,
                                                   embedding=True)
    seed = FeatureSpec().columns  # the method's 168 values and gender, last in every set
    assert store.columns[:len(seed) - 1] == seed[:-1] and store.columns[-1] == seed[-1]
    durations = sorted(float(r["duration"]) for r in store.rows)
    assert durations == [3.5] * 3  # the whole 3.5-s clips, not the method's 2.5-s crop
    assert open_store(str(stores["method"][0])).spec == FeatureSpec()


def test_training_on_another_set_or_a_crop_says_so_in_one_line(stores, tmp_path):
    method = CliRunner().invoke(main, ["train", str(stores["method"][0]), "--model",
                                       str(tmp_path / "m"), "--cv", "0", "--epochs", "1",
                                       "--quiet"])
    assert method.exit_code == 0, method.output
    notes = [line for line in method.output.splitlines() if line.startswith("note: ")]
    assert notes == ["note: the stores hold the seed set, not all and a crop of 2.5 s from "
                     "0.6 s, not the whole clip and no speaker embedding: serfast's default "
                     "network does better "
                     "within and across corpora on stores of serfast extract's defaults "
                     "(--features all --offset 0 --duration 0 --embedding; README, "
                     "Training)"]
    default = CliRunner().invoke(main, ["train", str(stores["default"][0]), "--model",
                                        str(tmp_path / "d"), "--cv", "0", "--epochs", "1",
                                        "--quiet"])
    assert default.exit_code == 0 and "note:" not in default.output
    assert store_notes(FeatureSpec(), TrainOptions(network="method")) == []
    whole_seed = FeatureSpec(offset=0.0, duration=0.0)
    assert store_notes(whole_seed, TrainOptions())[0].startswith(
        "the stores hold the seed set, not all and no speaker embedding: ")
    assert store_notes(replace(STORE_SPEC, embedding=False), TrainOptions())[0].startswith(
        "the stores hold no speaker embedding: ")


def test_clips_kept_without_their_corpus_label_are_reported(stores):
    path, output = stores["default"]
    assert "kept without a label: 1 clip(s), e.g. 03a01La.wav: EmoDB emotion L (boredom)" in output
    with open(path.with_suffix(".json")) as fh:
        assert json.load(fh)["unlabelled_files"] == [
            "03a01La.wav: EmoDB emotion L (boredom) is none of serfast's emotions; kept "
            "without a label (training leaves it out)"]
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in open_store(str(path)).rows}
    assert (rows["03a01La.wav"]["dataset"], rows["03a01La.wav"]["label"]) == ("emodb", "")


def test_default_network_refuses_a_store_without_frames_in_one_line(stores, tmp_path):
    result = CliRunner().invoke(main, ["train", str(stores["plain"][0]), "--model",
                                       str(tmp_path / "m"), "--cv", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "re-extract with frames" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_float16_frames_read_as_float32(stores, tmp_path):
    src = stores["default"][0]
    half = tmp_path / "half.npy"
    for ext in (".npy", ".csv", ".json"):
        shutil.copy(src.with_suffix(ext), half.with_suffix(ext))
    frames = np.load(src.with_suffix(".frames.npy"))
    assert frames.dtype == np.float32
    np.save(half.with_suffix(".frames.npy"), frames.astype(np.float16))
    full, small = open_store(str(src)), open_store(str(half))
    assert small.frames.dtype == np.float16
    for i in range(len(full.rows)):
        a, b = full.row_frames(i), small.row_frames(i)
        assert b.dtype == np.float32 and a.shape == b.shape
        assert np.array_equal(b, a.astype(np.float16).astype(np.float32))
    ds = load_dataset([str(half)], ["angry", "happy"], need_frames=True)
    assert all(f.dtype == np.float32 for f in ds.frames) and len(ds.y) == 2
