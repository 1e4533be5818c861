"""Praat's voicing decision on the pitch frame grid against Praat's own "To Pitch"
(parselmouth), on synthetic voices always and on real speech when the corpora are present."""

import numpy as np
import pytest

from serfast.features import praat_voicing as module
from serfast.features.pitch import HOP_LENGTH
from serfast.features.praat_voicing import praat_voicing

parselmouth = pytest.importorskip("parselmouth")
from parselmouth.praat import call  # noqa: E402
from test_voice import glottal_voice  # noqa: E402

SR = 22050


def frames(y):
    return 1 + len(y) // HOP_LENGTH


def praat_pitch_at_our_frames(y):
    """Praat's F0 (NaN where unvoiced) at the frames of our grid within 2 ms of one of
    its frame centres, and which frames those are."""
    pitch = call(parselmouth.Sound(y.astype(np.float64), sampling_frequency=SR),
                 "To Pitch", 0.0, 60, 500)
    centres = np.array([call(pitch, "Get time from frame number", i + 1)
                        for i in range(call(pitch, "Get number of frames"))])
    times = np.arange(frames(y)) * HOP_LENGTH / SR
    near = np.min(np.abs(times[:, None] - centres[None, :]), axis=1) < 0.002
    f0 = np.array([call(pitch, "Get value at time", t, "Hertz", "nearest") for t in times])
    return f0, near


def gapped_voice():
    """Voice (140 Hz, then 230 Hz), silence, breath-like noise, voice: 3 s."""
    rng = np.random.default_rng(5)
    low = glottal_voice(140, 0.01, 0.3, 0.05, seconds=0.8, seed=1)[0]
    high = glottal_voice(230, 0.01, 0.3, 0.05, seconds=0.7, seed=2)[0]
    silence = np.zeros(int(0.5 * SR), np.float32)
    breath = (0.02 * rng.standard_normal(int(0.5 * SR))).astype(np.float32)
    tail = glottal_voice(180, 0.02, 0.5, 0.1, seconds=0.5, seed=3)[0]
    return np.concatenate([low, high, silence, breath, tail])


def agreement(y):
    f0, voiced = praat_voicing(y, SR, frames(y))
    ref, near = praat_pitch_at_our_frames(y)
    ref_voiced = np.isfinite(ref)
    both = near & voiced & ref_voiced
    cents = np.abs(1200 * np.log2(f0[both] / ref[both]))
    return np.mean(voiced[near] == ref_voiced[near]), cents, near.sum()


def test_voicing_and_f0_agree_with_praat_on_a_voice_with_gaps():
    same, cents, n = agreement(gapped_voice())
    assert n > 60
    assert same >= 0.97
    assert np.median(cents) < 5 and np.mean(cents < 50) >= 0.98


def test_silence_and_noise_are_unvoiced_and_short_clips_have_no_voiced_frame():
    y = gapped_voice()
    f0, voiced = praat_voicing(y, SR, frames(y))
    t = np.arange(frames(y)) * HOP_LENGTH / SR
    assert not voiced[(t > 1.6) & (t < 1.9)].any()  # the silence, away from its edges
    assert voiced[(t > 0.1) & (t < 0.7)].all()
    assert np.all(f0[~voiced] == 0) and np.all((f0[voiced] > 60) & (f0[voiced] < 500))
    for short in (np.zeros(0, np.float32), np.zeros(SR, np.float32),
                  glottal_voice(seconds=0.04)[0]):
        f0, voiced = praat_voicing(short, SR, frames(short))
        assert f0.shape == voiced.shape == (frames(short),)
        assert not voiced.any() and not f0.any()


def test_batches_give_the_same_track(monkeypatch):
    y = gapped_voice()
    whole = praat_voicing(y, SR, frames(y))
    monkeypatch.setattr(module, "_BATCH", 7)
    for a, b in zip(whole, praat_voicing(y, SR, frames(y))):
        np.testing.assert_array_equal(a, b)


def test_real_speech_voicing_agrees_with_praat():
    """Measured (bench/RESULTS.md): 98.8 % of frames, F0 within 50 cents on 98.9 %."""
    from test_pitch import real_clips

    clips = real_clips(per_corpus=6)
    if len(clips) < 30:
        pytest.skip("real corpora not present")
    same = total = close = voiced = 0
    for y in clips:
        fraction, cents, n = agreement(y)
        same += fraction * n
        total += n
        close += np.sum(cents < 50)
        voiced += len(cents)
    assert same / total >= 0.97
    assert close / voiced >= 0.97


def test_the_frames_are_those_whose_window_fits():
    half = module._geometry(SR)[0]
    for n in (0, 549, 1100, 1101, 1102, 5000, SR):
        want = [k for k in range(frames(np.zeros(n))) if k * HOP_LENGTH + 1 >= half
                and k * HOP_LENGTH + half < n]
        lo, hi = module.fitting_frames(n, SR)
        assert list(range(lo, hi)) == want, n


def test_skipping_quiet_frames_changes_no_track(monkeypatch):
    """Frames under quiet_peak get no candidates: the path is the one every frame's
    candidates give (a quiet stretch and a loud one, and a fade between them)."""
    y = gapped_voice()
    y[:int(0.8 * SR)] *= np.linspace(0.005, 1.0, int(0.8 * SR), dtype=np.float32)
    y = np.concatenate([y, np.float32(0.015) * glottal_voice(150, seconds=0.6, seed=6)[0]])
    lo, hi = module.fitting_frames(len(y), SR)
    peaks = module.frame_peaks(y, SR, np.arange(lo, hi) * HOP_LENGTH)
    quiet = (peaks > 0) & (peaks < module.quiet_peak(module.clip_peak(y), SR))
    assert quiet.sum() > 40  # periodic frames among them
    skipped = praat_voicing(y, SR, frames(y))
    monkeypatch.setattr(module, "quiet_peak", lambda peak, sr: 0.0)
    for a, b in zip(skipped, praat_voicing(y, SR, frames(y))):
        np.testing.assert_array_equal(a, b)
