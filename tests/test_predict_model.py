"""`serfast predict` end to end with a real trained model (tiny, trained on the demo
corpus): frame-level features, per-channel speaker groups, gender filled by the model."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from serfast.io.audio import resample
from serfast.demo import synth_clip
from serfast_cli.main import main


@pytest.fixture
def model_dir(trained_model):
    """The session's tiny trained model (tests/conftest.py)."""
    return trained_model


def test_predict_with_a_trained_model(model_dir, stereo_call, tmp_path):
    from serfast import load_predictor

    predictor = load_predictor(model_dir)
    assert predictor.needs_frames
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", stereo_call, "--model", model_dir, "--out", str(out),
                                       "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["channel"] for r in rows} == {"0", "1"} and len(rows) >= 3
    for r in rows:
        assert r["label"] in predictor.labels and not r["error"]
        p = np.array([float(r[f"p_{lab}"]) for lab in predictor.labels])
        assert abs(p.sum() - 1) < 1e-3


def test_chunked_group_scores_exactly_like_one_call(model_dir):
    """group_sums over chunks + predict_proba(sums=) == one call over the whole group."""
    from serfast import load_predictor
    from serfast.features import compute_batch

    predictor = load_predictor(model_dir)
    assert predictor.chunked_groups
    clips = [synth_clip(e, 7, k, 22050, 2.5) for k in range(3)
             for e in ("angry", "sad", "happy", "neutral")]
    batch = compute_batch(clips, predictor.spec, frames=True)
    rows = np.concatenate([batch.values, np.full((len(clips), 1), np.nan, np.float32)], 1)
    whole = predictor.predict_proba(rows, batch.frames, np.zeros(len(rows), np.int64))
    sums = None
    for i in range(0, len(rows), 5):
        sums = predictor.group_sums(rows[i:i + 5], batch.frames[i:i + 5], sums)
    chunks = np.concatenate([predictor.predict_proba(rows[i:i + 5], batch.frames[i:i + 5],
                                                     np.zeros(len(rows[i:i + 5]), np.int64),
                                                     sums=sums)
                             for i in range(0, len(rows), 5)])
    assert np.allclose(chunks, whole, atol=1e-5)


def test_long_channel_one_group_whatever_the_chunks(model_dir, tmp_path):
    """A channel scored in chunks of 2 windows (frames spilled to a file) labels as one
    group in one call."""
    from serfast import load_predictor
    from serfast.calls import WindowOptions, label_channel

    predictor = load_predictor(model_dir)
    y = np.zeros(int(40 * 8000), np.float32)
    for k, emotion in enumerate(("angry", "sad", "happy", "neutral", "angry", "sad")):
        clip = resample(synth_clip(emotion, 5, k, 22050, 3.0), 22050, 8000)
        y[int((1 + 6 * k) * 8000):int((1 + 6 * k) * 8000) + len(clip)] += clip
    wav = str(tmp_path / "long.wav")
    sf.write(wav, y, 8000, subtype="ULAW")
    small = label_channel(wav, 0, predictor, WindowOptions(group=2, batch=2))
    big = label_channel(wav, 0, predictor, WindowOptions(group=10_000))
    assert len(small.starts) >= 6
    assert np.allclose(small.starts, big.starts) and np.allclose(small.probs, big.probs,
                                                                 atol=1e-5)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """The default network trained by `serfast train` on 4 synthetic speakers, and a store
    of 2 speakers it never heard, both extracted as `serfast extract` does by default."""
    import shutil

    from serfast.demo import make_demo_corpus
    from serfast.extract import ExtractOptions, extract
    from serfast.features.spec import STORE_SPEC

    root = tmp_path_factory.mktemp("learned")
    make_demo_corpus(str(root / "all"), speakers=6, takes=2)
    for actor in ("Actor_05", "Actor_06"):
        shutil.move(str(root / "all" / actor), str(root / "unseen" / actor))
    train_store, unseen_store = str(root / "train.npy"), str(root / "unseen.npy")
    stores = ExtractOptions(spec=STORE_SPEC, frames=True, workers=1)  # serfast extract's
    extract(str(root / "all"), train_store, stores)
    extract(str(root / "unseen"), unseen_store, stores)
    model = str(root / "model")
    result = CliRunner().invoke(main, ["train", train_store, "--model", model, "--cv", "0",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    return root, model, unseen_store


def test_the_default_network_learns_separable_data(learned):
    """Six synthetic emotions that differ as acted speech does (pitch, tempo, loudness):
    on speakers it never heard, the saved model is right far more often than chance (1/6)."""
    _, model, unseen = learned
    result = CliRunner().invoke(main, ["evaluate", model, unseen, "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n"] == 24 and scores["trained_on"] == 0
    assert scores["accuracy"] >= 0.6 and scores["uar"] >= 0.6


def test_predict_loads_the_saved_model_from_its_folder(learned, tmp_path):
    """`serfast predict --model DIR` with the model `serfast train` saved (no stand-in):
    each utterance of an unseen speaker gets its emotion from most of its windows."""
    _, model, _ = learned
    sr, utterances, y = 22050, [], np.zeros((40 * 22050, 2), np.float32)
    for k, emotion in enumerate(("neutral", "happy", "sad", "angry", "fearful", "disgust")):
        channel, start = k % 2, 1.0 + 6 * k
        clip = synth_clip(emotion, 5 + channel, k, sr, 3.5)
        y[int(start * sr):int(start * sr) + len(clip), channel] += clip
        utterances.append((channel, start, start + 3.5, emotion))
    call = str(tmp_path / "call.wav")
    sf.write(call, y, sr, subtype="PCM_16")
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", call, "--model", model, "--out", str(out),
                                       "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["error"]]
    right = 0
    for channel, start, end, emotion in utterances:
        mine = [r["label"] for r in rows if int(r["channel"]) == channel
                and start <= (float(r["start"]) + float(r["end"])) / 2 <= end]
        assert mine, (channel, start)
        right += max(set(mine), key=mine.count) == emotion
    assert right >= 4, f"{right} of 6 utterances labelled right"


class _Recorder:
    """A Predictor that keeps every scored chunk: (values, frames, probabilities)."""

    def __init__(self, inner):
        self.inner, self.scored = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict_proba(self, values, frames=None, groups=None, sums=None):
        probs = self.inner.predict_proba(values, frames, groups, sums)
        self.scored.append((values, frames, probs))
        return probs


def one_call(model_dir, chunks) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities ``chunks`` of a _Recorder got, and those of every one of their
    windows scored in one call as one group."""
    from serfast import load_predictor

    values = np.concatenate([v for v, _, _ in chunks])
    whole = load_predictor(model_dir).predict_proba(
        values, [f for _, fs, _ in chunks for f in fs], np.zeros(len(values), np.int64))
    return np.concatenate([p for _, _, p in chunks]), whole


@pytest.fixture
def speaker_folders(tmp_path):
    """One speaker's three clips in one folder, another speaker's clip in a second."""
    root = tmp_path / "clips"
    for folder, speaker, emotions in (("spk1", 7, ("angry", "sad", "happy")),
                                      ("spk2", 3, ("neutral",))):
        (root / folder).mkdir(parents=True)
        for k, emotion in enumerate(emotions):
            y = np.concatenate([np.zeros(8000), synth_clip(emotion, speaker, k, 22050, 2.5),
                                np.zeros(8000)])
            sf.write(str(root / folder / f"{k}_{emotion}.wav"), y, 22050)
    return root


def test_speakers_folder_scores_each_folder_as_one_group(model_dir, speaker_folders, tmp_path):
    """--speakers folder: the windows of a folder's files score exactly as one call over
    all of them (one speaker group); a folder of one file scores as its channel alone."""
    from serfast import load_predictor
    from serfast.calls.predict import PredictOptions, predict_archive

    runs = {}
    for speakers in ("channel", "folder"):
        rec = _Recorder(load_predictor(model_dir))
        predict_archive([str(speaker_folders)], rec, str(tmp_path / f"{speakers}.csv"),
                        PredictOptions(workers=1, speakers=speakers))
        runs[speakers] = rec.scored
    assert len(runs["folder"]) == len(runs["channel"]) == 4  # one chunk per file, in order
    grouped, whole = one_call(model_dir, runs["folder"][:3])
    assert np.allclose(grouped, whole, atol=1e-5)
    per_clip = np.concatenate([p for _, _, p in runs["channel"][:3]])
    assert not np.allclose(per_clip, whole, atol=1e-3)  # the group changes the scores
    assert np.allclose(runs["folder"][3][2], runs["channel"][3][2], atol=1e-6)


def test_speakers_archive_scores_every_file_as_one_group(model_dir, speaker_folders,
                                                         tmp_path):
    """--speakers archive: every file's windows in one group (speakers unknown)."""
    from serfast import load_predictor
    from serfast.calls.predict import PredictOptions, file_groups, predict_archive

    assert set(file_groups({"/a/1.wav": "", "/b/2.wav": "x"}, "archive").values()) == {"archive"}
    rec = _Recorder(load_predictor(model_dir))
    predict_archive([str(speaker_folders)], rec, str(tmp_path / "labels.csv"),
                    PredictOptions(workers=1, speakers="archive"))
    assert len(rec.scored) == 4
    grouped, whole = one_call(model_dir, rec.scored)
    assert np.allclose(grouped, whole, atol=1e-5)


def test_speakers_folder_refusals_are_one_line(model_dir, speaker_folders, tmp_path):
    """--speakers folder with --turns, or with a model that cannot sum a group's
    statistics, is refused in one line before anything is written."""
    from serfast import load_predictor
    from serfast.calls import WindowOptions
    from serfast.calls.predict import PredictOptions, predict_archive
    from serfast.model.config import ModelError

    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", str(speaker_folders), "--model", model_dir,
                                       "--out", str(out), "--speakers", "folder", "--turns",
                                       "--quiet"])
    assert result.exit_code == 1 and "use one of them" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()

    class PerFile:  # a Predictor without chunked groups
        def __init__(self, inner):
            self.labels, self.spec, self.needs_frames = inner.labels, inner.spec, True

    with pytest.raises(ModelError, match="normalises per speaker"):
        predict_archive([str(speaker_folders)], PerFile(load_predictor(model_dir)), str(out),
                        PredictOptions(workers=1, speakers="folder"))
    angry = speaker_folders / "angry"
    angry.mkdir()
    (speaker_folders / "spk2" / "0_neutral.wav").rename(angry / "x.wav")
    with pytest.raises(ValueError, match=r"angry/ is named after an emotion"):
        predict_archive([str(speaker_folders)], model_dir, str(out),
                        PredictOptions(workers=1, speakers="folder"))
    with pytest.raises(ValueError, match="speakers must be one of"):
        predict_archive([str(speaker_folders)], model_dir, str(out),
                        PredictOptions(workers=1, speakers="file",
                                       windows=WindowOptions()))
    assert not out.exists()


def test_speakers_folder_from_the_cli(model_dir, speaker_folders, tmp_path):
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", str(speaker_folders), "--model", model_dir,
                                       "--out", str(out), "--speakers", "folder",
                                       "--workers", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["file"] for r in rows}) == 4 and all(r["label"] for r in rows)
    assert "note: short files" not in result.output


def test_short_files_each_alone_get_a_note_naming_speakers(model_dir, speaker_folders,
                                                           tmp_path):
    result = CliRunner().invoke(main, ["predict", str(speaker_folders), "--model", model_dir,
                                       "--out", str(tmp_path / "labels.csv"), "--workers", "1",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "note: short files, each normalised alone" in result.output
    assert "--speakers folder" in result.output


def test_speakers_corpus_groups_the_files_of_a_manifest_speaker(model_dir, speaker_folders,
                                                                tmp_path):
    """--speakers corpus: a manifest's speaker column makes the groups, across folders."""
    from serfast import load_predictor
    from serfast.calls.predict import PredictOptions, archive_speakers, predict_archive

    files = sorted(str(p) for p in speaker_folders.rglob("*.wav"))
    manifest = speaker_folders / "clips.csv"
    manifest.write_text("path,label,speaker,gender\n" + "".join(
        f"{os.path.relpath(f, speaker_folders)},,{who},\n"
        for f, who in zip(files, ("a", "a", "b", "b"))))
    assert list(archive_speakers([str(manifest)]).values()) == ["clips_a"] * 2 + ["clips_b"] * 2
    rec = _Recorder(load_predictor(model_dir))
    predict_archive([str(manifest)], rec, str(tmp_path / "labels.csv"),
                    PredictOptions(workers=1, speakers="corpus"))
    assert len(rec.scored) == 4
    for group in (rec.scored[:2], rec.scored[2:]):  # spk1's third clip joins spk2's clip
        grouped, whole = one_call(model_dir, group)
        assert np.allclose(grouped, whole, atol=1e-5)


def test_speakers_folder_resumes_to_the_full_run(model_dir, speaker_folders, tmp_path):
    """An interrupted --speakers folder run resumes to the full run's rows: the first
    pass sums every file of a group again, finished ones too."""
    from test_predict import interrupted_run

    from serfast.calls.labels import OutputError
    from serfast.calls.predict import PredictOptions, predict_archive

    full = tmp_path / "full" / "labels.csv"
    full.parent.mkdir()
    opts = dict(workers=1, speakers="folder")
    predict_archive([str(speaker_folders)], model_dir, str(full),
                    PredictOptions(summary=str(full.parent / "summary.csv"), **opts))
    out = tmp_path / "resumed" / "labels.csv"
    out.parent.mkdir()
    interrupted_run([speaker_folders], model_dir, out, speakers="folder")
    with pytest.raises(OutputError, match="options"):  # other groups: not the same run
        predict_archive([str(speaker_folders)], model_dir, str(out),
                        PredictOptions(summary=str(out.parent / "summary.csv"), resume=True,
                                       workers=1))
    rep = predict_archive([str(speaker_folders)], model_dir, str(out),
                          PredictOptions(summary=str(out.parent / "summary.csv"), resume=True,
                                         **opts))
    assert rep.skipped == 1 and rep.files == 3
    for name in ("labels.csv", "summary.csv"):
        assert (out.parent / name).read_text() == (full.parent / name).read_text()


def test_speakers_voice_groups_the_files_whose_voices_cluster(model_dir, speaker_folders,
                                                               tmp_path, monkeypatch):
    """--speakers voice: speakers unknown, the files are grouped by the clusters of their
    voices. With each folder's files given one voice (the synthetic voices all sound
    alike to the encoder), every window scores as with --speakers folder; a file without
    speech scores alone, as with --speakers channel."""
    from serfast import load_predictor
    from serfast.calls import voice_groups
    from serfast.calls.predict import PredictOptions, predict_archive

    unit = np.eye(256, dtype=np.float32)
    folder_voice = {"spk1": unit[0], "spk2": unit[1]}
    monkeypatch.setattr(voice_groups, "channel_voice", lambda path, *a: folder_voice[
        os.path.basename(os.path.dirname(path))])
    runs = {}
    for speakers in ("folder", "voice", "channel"):
        rec = _Recorder(load_predictor(model_dir))
        predict_archive([str(speaker_folders)], rec, str(tmp_path / f"{speakers}.csv"),
                        PredictOptions(workers=1, speakers=speakers))
        runs[speakers] = [p for _, _, p in rec.scored]
    assert len(runs["voice"]) == len(runs["folder"]) == 4
    for by_folder, by_voice in zip(runs["folder"], runs["voice"]):
        np.testing.assert_allclose(by_voice, by_folder, atol=1e-6)
    folder_voice["spk1"] = None  # no speech found: each of its files alone
    rec = _Recorder(load_predictor(model_dir))
    predict_archive([str(speaker_folders)], rec, str(tmp_path / "silent.csv"),
                    PredictOptions(workers=1, speakers="voice"))
    for alone, got in zip(runs["channel"][:3], [p for _, _, p in rec.scored][:3]):
        np.testing.assert_allclose(got, alone, atol=1e-6)


def test_speakers_voice_finds_two_real_actors(ravdess_files, tmp_path):
    """Four clips each of RAVDESS actors 03 and 08 in one folder: the voice clusters are
    the actors, so the labels equal those of --speakers corpus (actors from the names)."""
    import csv
    import shutil

    from conftest import RAVDESS
    from serfast.calls.predict import PredictOptions, predict_archive

    folder = tmp_path / "clips"
    folder.mkdir()
    for actor in (3, 8):
        for p in sorted((RAVDESS / f"Actor_{actor:02d}").glob("*.flac"))[2::12][:4]:
            shutil.copy(p, folder / p.name)
    rows = {}
    for speakers in ("corpus", "voice"):
        out = tmp_path / f"{speakers}.csv"
        predict_archive([str(folder)], "default", str(out),
                        PredictOptions(workers=1, speakers=speakers))
        with open(out, newline="") as fh:
            rows[speakers] = [r for r in csv.DictReader(fh)]
    assert len(rows["voice"]) == len(rows["corpus"]) >= 16
    for a, b in zip(rows["corpus"], rows["voice"]):
        assert a["label"] == b["label"] and abs(float(a["p_angry"]) - float(b["p_angry"])) < 1e-4


def test_speakers_voice_refuses_more_channels_than_it_clusters(model_dir, speaker_folders,
                                                               tmp_path, monkeypatch):
    from serfast.calls import voice_groups
    from serfast.calls.predict import PredictOptions, predict_archive

    monkeypatch.setattr(voice_groups, "MAX_CHANNELS", 3)
    out = tmp_path / "labels.csv"
    with pytest.raises(ValueError, match="at most 3 channels at once .got 4.: label the "
                                         "archive in parts"):
        predict_archive([str(speaker_folders)], model_dir, str(out),
                        PredictOptions(workers=1, speakers="voice"))
    assert not out.exists()
