"""Speech rhythm statistics of the model inputs: counted on frames whose runs are known."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from serfast.model.inputs import RHYTHM_COLUMNS, rhythm_stats

HOP = 0.01  # s: runs >= 5 frames are voiced runs, pauses >= 10 frames, peaks >= 7 apart


def _frames(plan):
    """(f0, dB) of runs (kind, frames): "v" voiced speech at -20 dB and 200 Hz, "u"
    unvoiced speech at -20 dB, "p" a pause at -80 dB, "s" silence at -100 dB."""
    level = {"v": -20.0, "u": -20.0, "p": -80.0, "s": -100.0}
    f0 = np.concatenate([np.full(n, 200.0 if kind == "v" else 0.0) for kind, n in plan])
    db = np.concatenate([np.full(n, level[kind]) for kind, n in plan])
    return f0, db


def test_runs_pauses_and_peaks_of_a_known_plan():
    plan = [("s", 20)] + [("v", 10), ("p", 15)] * 3 + [("v", 10), ("s", 30)]
    got = dict(zip(RHYTHM_COLUMNS, rhythm_stats(*_frames(plan), HOP)))
    span = 0.85  # s: from the first speech frame to the last (4 x 10 + 3 x 15 frames)
    assert got["voiced_runs_per_s"] == pytest.approx(4 / span)
    assert got["voiced_run_log_s"] == pytest.approx(np.log(0.10))
    assert got["voiced_run_std_s"] == pytest.approx(0.0)
    assert got["pauses_per_s"] == pytest.approx(3 / span)
    assert got["pause_log_s"] == pytest.approx(np.log(0.15))
    assert got["pause_share"] == pytest.approx(45 / 85)
    assert got["peaks_per_s"] == pytest.approx(4 / span)
    assert got["voiced_share"] == pytest.approx(40 / 85)


def test_short_runs_do_not_count_and_silence_around_the_speech_does_not_matter():
    plan = [("v", 10), ("p", 6), ("v", 3), ("u", 7), ("v", 20)]  # a 6-frame gap, a 3-frame blip
    got = rhythm_stats(*_frames(plan), HOP)
    named = dict(zip(RHYTHM_COLUMNS, got))
    assert named["voiced_runs_per_s"] == pytest.approx(2 / 0.46)
    assert named["pauses_per_s"] == 0.0 and named["pause_share"] == 0.0
    assert named["pause_log_s"] == pytest.approx(np.log(HOP))  # none: one frame's length
    padded = rhythm_stats(*_frames([("s", 40)] + plan + [("p", 25)]), HOP)
    np.testing.assert_array_equal(padded, got)


@pytest.mark.parametrize("f0, db", [(np.zeros(1), np.zeros(1)),  # one frame
                                    (np.zeros(50), np.full(50, -100.0)),  # silence
                                    (np.full(50, 120.0), np.full(50, -3.0))])  # one long vowel
def test_degenerate_clips_give_finite_values(f0, db):
    out = rhythm_stats(f0, db, HOP)
    assert out.shape == (len(RHYTHM_COLUMNS),) and np.isfinite(out).all()


def test_models_of_the_all_set_use_rhythm_and_older_or_seed_models_do_not():
    import serfast.model
    from serfast.model.saved import load_predictor

    folder = os.path.dirname(serfast.model.__file__)
    for name, rhythm in (("default", True), ("telephone", False), ("fast", False)):
        assert load_predictor(name).config.rhythm is rhythm
        saved = json.load(open(os.path.join(folder, name, "model.json")))["config"]
        assert saved.get("rhythm", False) is rhythm
