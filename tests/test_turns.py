"""Speaker turns of a mixed channel: voices from window speaker embeddings, results split
per voice."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from serfast.calls.channel import ChannelResult, WindowOptions, label_channel
from serfast.calls.turns import speaker_turns, split_by_speaker
from serfast.demo import synth_clip
from serfast.features.spec import FeatureSpec


def _embeddings(truth: np.ndarray, rng, spread: float = 0.3) -> np.ndarray:
    """Unit vectors around one random direction per voice, as a speaker encoder gives."""
    centres = np.abs(rng.normal(0, 1, (2, 256)))
    x = centres[truth] + spread * np.abs(rng.normal(0, 1, (len(truth), 256)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_two_voices_in_runs_are_found_and_a_speaks_first():
    rng = np.random.default_rng(0)
    truth = np.repeat([1, 0, 1, 0, 1], [6, 5, 7, 4, 6])  # the first voice is 1 here
    embeddings = _embeddings(truth, rng)
    starts = np.arange(len(truth)) * 1.25
    shuffled = rng.permutation(len(truth))  # the order of the rows does not matter
    voices = speaker_turns(embeddings[shuffled], starts[shuffled])
    np.testing.assert_array_equal(voices, 1 - truth[shuffled])  # named A, B by appearance


def test_a_lone_window_takes_its_neighbours_voice():
    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1, 0], [8, 8, 8])
    embeddings = _embeddings(truth, rng)
    embeddings[12] = embeddings[0]  # one window inside B's turn sounds like A
    voices = speaker_turns(embeddings, np.arange(24.0))
    np.testing.assert_array_equal(voices, truth)
    assert speaker_turns(embeddings[:1], np.zeros(1)).tolist() == [0]


def test_split_by_speaker_gives_each_voice_its_windows_and_speech():
    res = ChannelResult(np.array([0.0, 1.0, 3.0, 4.0]), np.array([2.0, 3.0, 5.0, 6.0]),
                        np.eye(4, dtype=np.float32), [(0.0, 6.5)], 7.0,
                        speakers=np.array([0, 0, 1, 1]))
    (name_a, a), (name_b, b) = split_by_speaker("mix", res)
    assert (name_a, name_b) == ("mix:A", "mix:B")
    assert a.starts.tolist() == [0.0, 1.0] and b.starts.tolist() == [3.0, 4.0]
    assert a.regions == [(0.0, 3.0)] and b.regions == [(3.0, 6.0)]
    assert a.seconds == b.seconds == 7.0 and a.speakers is None
    one = ChannelResult(res.starts, res.ends, res.probs)
    assert split_by_speaker("0", one) == [("0", one)]


class Uniform:
    """A model that says nothing: the test is about the voices."""

    spec, labels, needs_frames = FeatureSpec(), ["neutral", "angry"], False

    def predict_proba(self, rows, frames, groups):
        return np.full((len(rows), 2), 0.5, np.float32)


def test_a_mono_recording_is_labelled_per_turn(tmp_path):
    """Two synthetic voices (a low man's, a high woman's) taking turns in one channel."""
    sr = 22050
    plan = [1, 2, 1, 2, 2, 1, 2, 1]
    clips = [synth_clip("neutral", s, k, sr, 3.5) for k, s in enumerate(plan)]
    gap = np.zeros(int(0.6 * sr), np.float32)
    y = np.concatenate([part for c in clips for part in (c, gap)])
    path = str(tmp_path / "mono.wav")
    sf.write(path, y, sr, subtype="FLOAT")
    res = label_channel(path, 0, Uniform(), WindowOptions(turns=True))
    plain = label_channel(path, 0, Uniform(), WindowOptions())
    assert plain.speakers is None and len(res.starts) == len(plain.starts) > 8
    step = (3.5 + 0.6)
    who = [plan[min(int((a + b) / 2 // step), len(plan) - 1)] for a, b in
           zip(res.starts, res.ends)]
    truth = np.array([0 if s == plan[0] else 1 for s in who])
    assert np.mean(res.speakers == truth) >= 0.8
    stereo = str(tmp_path / "stereo.wav")
    sf.write(stereo, np.stack([y, y], axis=1), sr, subtype="FLOAT")
    assert label_channel(stereo, 0, Uniform(), WindowOptions(turns=True)).speakers is None


def test_predict_writes_labels_and_summary_per_voice(tmp_path):
    import csv

    from serfast.calls.labels import output_paths
    from serfast.calls.predict import PredictOptions, predict_archive

    sr = 22050
    y = np.concatenate([synth_clip("neutral", s, k, sr, 3.5)
                        for k, s in enumerate([1, 2, 1, 2])])
    sf.write(str(tmp_path / "mono.wav"), y, sr, subtype="FLOAT")
    out = str(tmp_path / "labels.csv")
    predict_archive([str(tmp_path / "mono.wav")], Uniform(), out,
                    PredictOptions(windows=WindowOptions(turns=True), workers=1))
    with open(out, newline="") as fh:
        channels = [r["channel"] for r in csv.DictReader(fh)]
    with open(output_paths(out).summary, newline="") as fh:
        summary = [r["channel"] for r in csv.DictReader(fh)]
    assert set(channels) == {"0:A", "0:B"} and summary == ["0:A", "0:B"]


def test_two_real_actors_taking_turns_are_told_apart(tmp_path, ravdess_files):
    """Actors 03 and 05 (two men), four clips each in four emotions, alternating in one
    8 kHz channel as on a phone line: most windows get the right voice (measured 22 of
    23)."""
    import soxr

    from conftest import RAVDESS

    def clips(actor):
        return [soxr.resample(sf.read(str(p), dtype="float32")[0], 48000, 8000)
                for p in sorted((RAVDESS / f"Actor_{actor:02d}").glob("*.flac"))[2::12][:4]]

    turns = [c for pair in zip(clips(3), clips(5)) for c in pair]
    y = np.concatenate([part for c in turns for part in (c, np.zeros(2400, np.float32))])
    edges = np.cumsum([0] + [len(c) + 2400 for c in turns]) / 8000
    path = str(tmp_path / "mono.wav")
    sf.write(path, y, 8000, subtype="FLOAT")
    res = label_channel(path, 0, Uniform(), WindowOptions(turns=True))
    who = np.searchsorted(edges, (res.starts + res.ends) / 2, side="right") - 1
    truth = who % 2  # actor 03 first: voice A
    assert len(truth) >= 16 and np.mean(res.speakers == truth) >= 0.8
