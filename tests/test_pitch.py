"""pYIN and YIN against librosa, on synthetic signals always and on real speech when the
corpora are present; the per-clip F0 statistics and their finite values on bad audio."""

import csv
from pathlib import Path

import librosa
import numpy as np
import pytest

from serfast.features import pitch
from serfast.features.pitch import (HOP_LENGTH, PITCH_COLUMNS, pitch_row, pitch_rows,
                                    pitch_stats, pitch_track, yin_track)

SR = 22050
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ARGS = dict(fmin=pitch.FMIN, fmax=pitch.FMAX, sr=SR, frame_length=pitch.FRAME_LENGTH,
            hop_length=HOP_LENGTH)


def tone(hz, seconds=1.5, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def vibrato(seconds=2.0):
    """A 200 Hz tone with harmonics, +-1 semitone of vibrato at 5 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    f = 200 * 2 ** (np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f) / SR
    return (0.3 * np.sin(phase) + 0.15 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)
            ).astype(np.float32)


def syllables(seconds=2.5, seed=0):
    """Voiced bursts of a falling 90-250 Hz pitch between noisy pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = 250 - 160 * (t / seconds)
    phase = 2 * np.pi * np.cumsum(f) / SR
    voiced = (t % 0.4) < 0.25
    y = 0.4 * np.sin(phase) * voiced + 0.2 * np.sin(2 * phase) * voiced
    return (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


SIGNALS = {
    "tone_180": lambda: tone(180.0),
    "tone_65": lambda: tone(65.0),
    "tone_480": lambda: tone(480.0),
    "chirp": lambda: (0.5 * librosa.chirp(fmin=70, fmax=450, sr=SR, duration=2.0)
                      ).astype(np.float32),
    "vibrato": vibrato,
    "syllables": syllables,
    "noise": lambda: (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32),
    "silence": lambda: np.zeros(SR, np.float32),
    "one_sample": lambda: np.array([0.3], np.float32),
    "short": lambda: tone(150.0, seconds=0.01),
    "clipped": lambda: np.clip(4 * vibrato(), -1, 1).astype(np.float32),
    "dc_offset": lambda: syllables() + np.float32(0.4),
}


def assert_matches_librosa(y):
    """pYIN and YIN of ``y`` agree with librosa within the parity targets; returns the
    fraction of frames whose voicing agrees and the both-voiced frames within 1 cent."""
    f0, voiced, prob = pitch_track(y, SR)
    ref_f0, ref_voiced, ref_prob = librosa.pyin(y, **ARGS)
    assert f0.shape == ref_f0.shape == voiced.shape == prob.shape
    agree = np.mean(voiced == ref_voiced)
    both = voiced & ref_voiced
    cents = np.abs(1200 * np.log2(f0[both] / ref_f0[both]))
    within = np.mean(cents <= 1.0) if both.any() else 1.0
    assert agree >= 0.99 and within >= 0.99, (agree, within)
    assert np.all(np.isnan(f0[~voiced])) and np.all(np.isfinite(f0[voiced]))
    np.testing.assert_allclose(prob, ref_prob, rtol=0, atol=1e-6)
    yin = yin_track(y, SR)
    ref_yin = librosa.yin(y, **ARGS)
    np.testing.assert_array_less(np.abs(1200 * np.log2(yin / ref_yin)), 1.0)
    return agree, within


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_pyin_and_yin_match_librosa_on_synthetic_signals(name):
    assert_matches_librosa(SIGNALS[name]())


def test_a_tone_is_voiced_at_its_pitch():
    f0, voiced, _ = pitch_track(tone(220.0), SR)
    assert voiced[5:-5].all()
    assert np.all(np.abs(1200 * np.log2(f0[5:-5] / 220.0)) < 20)  # pYIN bins: 10 cents


def test_long_clips_decode_across_viterbi_segments_and_fft_chunks():
    """Over 1024 frames: several Viterbi segments and two autocorrelation chunks."""
    y = np.concatenate([syllables(seed=s) for s in range(5)] + [vibrato()])
    assert 1 + len(y) // HOP_LENGTH > 1024
    agree, within = assert_matches_librosa(y)
    assert agree == 1.0 and within == 1.0


def test_stats_of_a_known_track():
    f0 = np.array([np.nan, 100.0, 200.0, np.nan, 400.0, 400.0])
    voiced = ~np.isnan(f0)
    prob = np.array([0.0, 0.5, 0.5, 0.1, 1.0, 0.9])
    row = dict(zip(PITCH_COLUMNS, pitch_stats(f0, voiced, prob, SR)))
    hz = f0[voiced]
    assert row["f0_mean"] == pytest.approx(hz.mean())
    assert row["f0_std"] == pytest.approx(hz.std())
    p10, p50, p90 = np.percentile(hz, [10, 50, 90])
    assert (row["f0_p10"], row["f0_p50"], row["f0_p90"]) == pytest.approx((p10, p50, p90))
    assert row["f0_range_st"] == pytest.approx(12 * np.log2(p90 / p10), rel=1e-6)
    seconds = np.flatnonzero(voiced) * HOP_LENGTH / SR
    slope = np.polyfit(seconds, 12 * np.log2(hz), 1)[0]
    assert row["f0_slope_st_s"] == pytest.approx(slope, rel=1e-5)
    assert row["f0_delta_abs_st"] == pytest.approx((12 + 0) / 2)  # 100->200, 400->400
    assert row["voiced_fraction"] == pytest.approx(4 / 6)
    assert row["voicing_prob_mean"] == pytest.approx(prob.mean())


def test_no_voiced_frame_stores_zeros():
    row = pitch_stats(np.full(5, np.nan), np.zeros(5, bool), np.full(5, 0.2), SR)
    assert np.all(row[:8] == 0) and row[8] == 0 and row[9] == pytest.approx(0.2)
    one = pitch_stats(np.array([np.nan, 150.0]), np.array([False, True]), np.ones(2), SR)
    assert one[0] == one[3] == pytest.approx(150.0)
    assert one[1] == one[5] == one[6] == one[7] == 0


@pytest.mark.parametrize("name", ["silence", "one_sample", "short", "noise", "clipped",
                                  "dc_offset"])
def test_rows_are_finite_on_bad_audio(name):
    row = pitch_row(SIGNALS[name](), SR)
    assert row.shape == (len(PITCH_COLUMNS),) and row.dtype == np.float32
    assert np.all(np.isfinite(row))
    if name == "silence":
        assert np.all(row == 0)


def test_row_is_the_stats_of_librosas_track_and_batches_agree():
    y = syllables()
    ref = pitch_stats(*librosa.pyin(y, **ARGS), SR)
    np.testing.assert_allclose(pitch_row(y, SR), ref, rtol=1e-6, atol=1e-6)
    clips = [y, vibrato(), np.zeros(100, np.float32)]
    rows = pitch_rows(clips, SR)
    assert rows.shape == (3, len(PITCH_COLUMNS))
    for clip, row in zip(clips, rows):
        np.testing.assert_array_equal(row, pitch_row(clip, SR))


def real_clips(per_corpus=4):
    """A few 2.5-s clips (the seed crop, 22,050 Hz) of each corpus present."""
    from serfast.io.audio import load_clip

    paths = []
    ravdess = CORPORA / "ravdess"
    if ravdess.is_dir():
        files = sorted(ravdess.rglob("*.flac"))
        paths += files[::max(len(files) // per_corpus, 1)][:per_corpus]
    for name in ("tess", "savee", "nemo", "ased", "emoes"):
        manifest = CORPORA / name / "manifest.csv"
        if manifest.is_file():
            with open(manifest, newline="") as f:
                rows = list(csv.DictReader(f))
            step = max(len(rows) // per_corpus, 1)
            paths += [CORPORA / name / r["path"] for r in rows[::step][:per_corpus]]
    return [load_clip(str(p)) for p in paths]


@pytest.fixture(scope="module")
def speech_clips():
    clips = real_clips()
    if len(clips) < 20:
        pytest.skip(f"real corpora not present at {CORPORA}")
    return clips


def test_pyin_matches_librosa_on_real_speech(speech_clips):
    frames = agree = both = within = 0
    for y in speech_clips:
        f0, voiced, prob = pitch_track(y, SR)
        ref_f0, ref_voiced, ref_prob = librosa.pyin(y, **ARGS)
        frames += len(voiced)
        agree += np.count_nonzero(voiced == ref_voiced)
        mask = voiced & ref_voiced
        both += np.count_nonzero(mask)
        within += np.count_nonzero(np.abs(1200 * np.log2(f0[mask] / ref_f0[mask])) <= 1.0)
        np.testing.assert_allclose(prob, ref_prob, rtol=0, atol=1e-6)
        yin = yin_track(y, SR)
        np.testing.assert_array_less(np.abs(1200 * np.log2(yin / librosa.yin(y, **ARGS))), 1.0)
    assert both > 0.2 * frames  # real speech: a good share of voiced frames
    assert agree / frames >= 0.99 and within / both >= 0.99


def test_pyin_tables_disk_cache_round_trips(tmp_path, monkeypatch):
    """pYIN's tables are built once per user and read back equal, numbers as numbers, so a
    fresh process decodes exactly as the one that built them."""
    monkeypatch.setenv("SERFAST_CACHE", str(tmp_path))
    y = np.sin(2 * np.pi * 180 * np.arange(11025) / 22050).astype(np.float32)
    pitch._model.cache_clear()
    try:
        built = pitch._model(22050)
        assert len(list(tmp_path.glob("pyin-*.npz"))) == 1
        first = pitch.pitch_tracks(y, 22050)
        pitch._model.cache_clear()
        loaded = pitch._model(22050)
        for name in built.__dataclass_fields__:
            a, b = getattr(built, name), getattr(loaded, name)
            assert type(a) is type(b) and np.array_equal(a, b), name
        for a, b in zip(first, pitch.pitch_tracks(y, 22050)):
            np.testing.assert_array_equal(a, b)
    finally:
        pitch._model.cache_clear()
