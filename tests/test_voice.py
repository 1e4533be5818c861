"""Jitter, shimmer and HNR: known values on synthetic voices, Praat (parselmouth) as the
reference on synthetic voices always and on real speech when the corpora are present, and
finite values on bad audio."""

import numpy as np
import pytest

from serfast.features.pitch import pitch_tracks
from serfast.features.pitch import PITCH_COLUMNS, pitch_row
from serfast.features.voice import (VOICE_COLUMNS, pitch_voice_row, voice_row, voice_rows,
                                    voice_stats)

parselmouth = pytest.importorskip("parselmouth")
from parselmouth.praat import call  # noqa: E402

SR = 22050


def glottal_voice(f0=140.0, jitter=0.0, shimmer_db=0.0, noise=0.0, seconds=1.5, seed=0):
    """A voice of damped 500 Hz and 1500 Hz resonances excited at pulse times whose periods
    vary by ``jitter`` (relative s.d.) and amplitudes by ``shimmer_db`` (s.d., dB); white
    noise of ``noise`` times the voice's RMS. Returns (y, periods s, amplitudes)."""
    rng = np.random.default_rng(seed)
    times = [0.02]
    while times[-1] < seconds - 0.03:
        times.append(times[-1] + (1 + jitter * rng.standard_normal()) / f0)
    times = np.array(times)
    amps = 10 ** (shimmer_db * rng.standard_normal(len(times)) / 20)
    y = np.zeros(int(seconds * SR))
    span = int(0.012 * SR)
    for t, a in zip(times, amps):
        n0 = int(np.ceil(t * SR))
        d = (np.arange(n0, min(n0 + span, len(y))) / SR) - t
        y[n0:n0 + len(d)] += a * (np.exp(-d / 0.002) * np.sin(2 * np.pi * 500 * d)
                                  + 0.5 * np.exp(-d / 0.001) * np.sin(2 * np.pi * 1500 * d))
    y *= 0.3 / np.abs(y).max()
    if noise:
        y += noise * np.sqrt(np.mean(y ** 2)) * rng.standard_normal(len(y))
    return y.astype(np.float32), np.diff(times), amps


def praat(y):
    """Praat's jitter (local), shimmer (local, dB) and mean HNR (cc) at 60-500 Hz."""
    sound = parselmouth.Sound(y.astype(np.float64), sampling_frequency=SR)
    pulses = call(sound, "To PointProcess (periodic, cc)", 60, 500)
    jitter = call(pulses, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    shimmer = call([sound, pulses], "Get shimmer (local_dB)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    hnr = call(call(sound, "To Harmonicity (cc)", 0.01, 60, 0.1, 1.0), "Get mean", 0, 0)
    return np.array([jitter, shimmer, hnr])


def test_a_perfectly_periodic_voice_has_no_jitter_or_shimmer_and_a_high_hnr():
    y, _, _ = glottal_voice()
    jitter, shimmer, hnr = voice_row(y, SR)
    assert jitter < 0.002 and shimmer < 0.05 and hnr > 25


def test_jitter_and_shimmer_measure_the_voice_they_were_made_with():
    y, periods, amps = glottal_voice(jitter=0.02, shimmer_db=1.0, seed=3)
    true_jitter = np.mean(np.abs(np.diff(periods))) / periods.mean()
    true_shimmer = np.mean(np.abs(np.diff(20 * np.log10(amps))))
    jitter, shimmer, _ = voice_row(y, SR)
    assert jitter == pytest.approx(true_jitter, rel=0.2)
    assert shimmer == pytest.approx(true_shimmer, rel=0.25)


def test_hnr_falls_with_noise():
    hnrs = [voice_row(glottal_voice(noise=k, seed=1)[0], SR)[2] for k in (0.03, 0.1, 0.3, 1.0)]
    assert np.all(np.diff(hnrs) < 0)


def test_synthetic_voices_agree_with_praat():
    """Twelve voices of different jitter, shimmer, noise and pitch: each column correlates
    with Praat's across them at r >= 0.95."""
    settings = [(f0, j, s, nz) for f0, j, s, nz in [
        (110, 0.005, 0.3, 0.05), (140, 0.01, 0.6, 0.1), (180, 0.02, 1.0, 0.2),
        (220, 0.03, 1.5, 0.3), (260, 0.015, 0.4, 0.5), (120, 0.04, 2.0, 0.02),
        (160, 0.008, 0.8, 0.8), (200, 0.025, 0.2, 0.15), (240, 0.012, 1.2, 0.05),
        (130, 0.035, 0.5, 0.4), (170, 0.002, 1.8, 0.25), (300, 0.02, 0.9, 0.1)]]
    ours, ref = [], []
    for i, (f0, j, s, nz) in enumerate(settings):
        y, _, _ = glottal_voice(f0, j, s, nz, seed=i)
        ours.append(voice_row(y, SR))
        ref.append(praat(y))
    ours, ref = np.array(ours), np.array(ref)
    for c in range(len(VOICE_COLUMNS)):
        assert np.corrcoef(ours[:, c], ref[:, c])[0, 1] >= 0.95, VOICE_COLUMNS[c]


@pytest.mark.parametrize("y", [np.zeros(SR, np.float32), np.array([0.3], np.float32),
                               np.zeros(10, np.float32),
                               np.clip(4 * glottal_voice()[0], -1, 1),
                               glottal_voice(noise=0.2)[0] + np.float32(0.4),
                               (0.1 * np.random.default_rng(0).standard_normal(SR)
                                ).astype(np.float32)],
                         ids=["silence", "one_sample", "ten_samples", "clipped", "dc_offset",
                              "noise"])
def test_rows_are_finite_on_bad_audio(y):
    row = voice_row(y, SR)
    assert row.shape == (len(VOICE_COLUMNS),) and row.dtype == np.float32
    assert np.all(np.isfinite(row))
    if not np.any(y):
        assert np.all(row == 0)


def test_stats_from_a_shared_track_and_batches_equal_the_row():
    clips = [glottal_voice(jitter=0.01, seed=s)[0] for s in range(2)] + [np.zeros(5, np.float32)]
    rows = voice_rows(clips, SR)
    for y, row in zip(clips, rows):
        f0, voiced, _, yin_f0 = pitch_tracks(y, SR)
        np.testing.assert_array_equal(row, voice_stats(y, SR, f0, voiced, yin_f0))
        np.testing.assert_array_equal(row, voice_row(y, SR))
        both = pitch_voice_row(y, SR)
        assert both.shape == (len(PITCH_COLUMNS) + len(VOICE_COLUMNS),)
        np.testing.assert_array_equal(both, np.concatenate([pitch_row(y, SR), row]))


def test_a_dc_offset_changes_nothing_praat_would_not():
    """Praat's harmonicity removes the local mean, so a constant offset (some corpora carry
    one) must not raise HNR; Praat's pulses see it, and so do ours."""
    y = glottal_voice(160, 0.01, 0.5, 0.2, seed=4)[0]
    shifted = y + np.float32(0.1)
    ours, ref = voice_row(shifted, SR), praat(shifted)
    assert abs(ours[2] - voice_row(y, SR)[2]) < 0.3
    assert abs(ours[2] - ref[2]) < 1.5
    assert ours[0] == pytest.approx(ref[0], rel=0.2)


def test_real_speech_agrees_with_praat():
    """108 clips, 18 of each corpus, must reach the issue's r >= 0.95 in every column.
    Measured (see bench/RESULTS.md): r = 0.969 (jitter), 0.957 (shimmer), 0.985 (HNR)."""
    from test_pitch import real_clips

    clips = real_clips(per_corpus=18)
    if len(clips) < 100:
        pytest.skip("real corpora not present")
    ours = np.array([voice_row(y, SR) for y in clips])
    ref = np.array([praat(y) for y in clips])
    ok = np.all(np.isfinite(ref), axis=1)
    assert ok.sum() >= 100
    for c in range(3):
        assert np.corrcoef(ours[ok, c], ref[ok, c])[0, 1] >= 0.95, VOICE_COLUMNS[c]
