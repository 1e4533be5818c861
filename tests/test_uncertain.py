"""Tests of `serfast predict --min-confidence P`: windows below P are labelled
``uncertain``, their probabilities are still written, and summary.csv counts their time
apart (``uncertain_seconds``)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from serfast.calls.channel import ChannelResult
from serfast.calls.labels import label_rows, summary_fields, summary_rows
from serfast.calls.predict import PredictOptions, predict_archive
from serfast.calls.summary import UNCERTAIN, summarize
from serfast.demo import synth_clip
from serfast.features.spec import FeatureSpec
from serfast_cli.main import main

LABELS = ["neutral", "happy", "sad"]
SURE, UNSURE = [0.1, 0.8, 0.1], [0.4, 0.35, 0.25]


class AlternatingPredictor:
    """A Predictor double: window i of a call is sure (0.8 happy) when i is even, unsure
    (0.4 neutral) when i is odd."""

    needs_frames = False

    def __init__(self):
        self.labels, self.spec = list(LABELS), FeatureSpec()

    def predict_proba(self, values, frames=None, groups=None):
        return np.array([SURE if i % 2 == 0 else UNSURE for i in range(len(values))],
                        dtype=np.float32)


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def calls(tmp_path):
    """A mono 8 kHz call with three utterances of synthetic speech."""
    folder = tmp_path / "calls"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y = 0.002 * rng.standard_normal(8000 * 20).astype(np.float32)
    for start, emotion in ((1.0, "happy"), (7.0, "sad"), (13.0, "neutral")):
        clip = synth_clip(emotion, 2, 1, 8000, 3.5)
        y[int(start * 8000):int(start * 8000) + len(clip)] += clip
    sf.write(str(folder / "call.wav"), y, 8000, subtype="PCM_16")
    return folder


def test_label_rows_mark_windows_below_p_and_keep_their_probabilities():
    probs = np.array([SURE, UNSURE, [0.5, 0.3, 0.2]], np.float32)
    res = ChannelResult(np.array([0.0, 1.0, 2.0]), np.array([2.5, 3.5, 4.5]), probs)
    plain = label_rows("f.wav", "0", res, LABELS)
    marked = label_rows("f.wav", "0", res, LABELS, min_confidence=0.5)
    assert [r[4] for r in plain] == ["happy", "neutral", "neutral"]
    assert [r[4] for r in marked] == ["happy", UNCERTAIN, "neutral"]  # 0.5 is not below 0.5
    for a, b in zip(plain, marked):  # confidence and probabilities are written unchanged
        assert a[:4] + a[5:] == b[:4] + b[5:]


def test_summarize_counts_uncertain_time_apart():
    one_sure = np.array([SURE, SURE, UNSURE, UNSURE])
    starts = np.array([0.0, 2.0, 10.0, 12.0])
    regions = [(0.0, 4.0), (10.0, 14.0)]
    s = summarize(starts, starts + 2.0, one_sure, regions, LABELS, 20.0, min_confidence=0.5)
    assert s.uncertain_seconds == pytest.approx(4.0, abs=0.06)
    assert s.shares == pytest.approx({"neutral": 0.0, "happy": 0.5, "sad": 0.0}, abs=0.01)
    assert s.dominant == "happy"
    plain = summarize(starts, starts + 2.0, one_sure, regions, LABELS, 20.0)
    assert plain.uncertain_seconds == 0.0
    assert sum(plain.shares.values()) == pytest.approx(1.0)
    assert (plain.negative_start, plain.negative_score) == (s.negative_start, s.negative_score)
    none_sure = summarize(starts[2:], starts[2:] + 2.0, one_sure[2:], regions[1:], LABELS,
                          20.0, min_confidence=0.5)
    assert none_sure.dominant == UNCERTAIN and sum(none_sure.shares.values()) == 0.0


def test_summary_rows_have_the_uncertain_column():
    fields = summary_fields(LABELS)
    assert fields[:5] == ["file", "channel", "seconds", "speech_seconds", "uncertain_seconds"]
    res = ChannelResult(np.array([0.0]), np.array([2.0]), np.array([UNSURE]), [(0.0, 2.0)], 5.0)
    (row,) = summary_rows("f.wav", "0", res, LABELS, min_confidence=0.5)
    assert len(row) == len(fields)
    values = dict(zip(fields, row))
    assert values["uncertain_seconds"] == "2.000" and values["dominant"] == UNCERTAIN


def test_predict_min_confidence_end_to_end(calls, tmp_path):
    model = AlternatingPredictor()
    out = {}
    for p in (0.0, 0.5):
        folder = tmp_path / f"p{p}"
        folder.mkdir()
        opts = PredictOptions(workers=1, min_confidence=p)
        predict_archive([str(calls)], model, str(folder / "labels.csv"), opts)
        out[p] = (read_csv(folder / "labels.csv"), read_csv(folder / "labels.summary.csv"))
    (plain, plain_summary), (marked, marked_summary) = out[0.0], out[0.5]
    assert len(plain) == len(marked) >= 4
    for a, b in zip(plain, marked):
        assert {k: v for k, v in a.items() if k != "label"} == \
               {k: v for k, v in b.items() if k != "label"}
        assert b["label"] == (UNCERTAIN if float(b["confidence"]) < 0.5 else a["label"])
    assert {r["label"] for r in marked} == {"happy", UNCERTAIN}
    (s0,), (s1,) = plain_summary, marked_summary
    assert float(s0["uncertain_seconds"]) == 0.0
    assert 0.0 < float(s1["uncertain_seconds"]) <= float(s1["speech_seconds"]) + 0.05
    assert s0["speech_seconds"] == s1["speech_seconds"]
    assert sum(float(s1[f"share_{lab}"]) for lab in LABELS) < 1.0


def test_cli_min_confidence(calls, tmp_path, monkeypatch):
    import serfast.calls.predict

    monkeypatch.setattr(serfast.calls.predict, "load_model", lambda model: AlternatingPredictor())
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["predict", str(calls), "--model", str(calls),
                                       "--out", str(out), "--workers", "1", "--quiet",
                                       "--min-confidence", "0.5"])
    assert result.exit_code == 0, result.output
    assert UNCERTAIN in {r["label"] for r in read_csv(out)}
    bad = CliRunner().invoke(main, ["predict", str(calls), "--out", str(tmp_path / "x.csv"),
                                    "--min-confidence", "1.5"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
