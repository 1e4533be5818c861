"""Spectral shape, loudness dynamics and frame statistics of the prosody sets against
librosa, on synthetic signals and on 40 real clips when the corpora are present."""

import numpy as np
import pytest

import librosa

from serfast.features import shape
from serfast.features.cpu import compute_batch
from serfast.features.spec import SHAPE_TRACKS, FeatureSpec
from serfast.io.audio import load_clip

from conftest import rng_signal, speech

SPEC = FeatureSpec(name="prosody")
AT = SPEC.slices
#: The columns with a librosa counterpart: loudness mean, std and 20-80 range, and every
#: shape and MFCC statistic.
COMPARED = np.r_[AT["loudness"].start:AT["loudness"].start + 3,
                 AT["shape_mean"].start:AT["mfcc_delta"].stop]


def librosa_columns(y, sr=22050):
    """The compared columns of one clip, from librosa 0.11 (``shape``'s docstring)."""
    S = np.abs(librosa.stft(y))
    tracks = np.vstack([librosa.feature.spectral_contrast(S=S, sr=sr),
                        librosa.feature.spectral_flatness(S=S),
                        librosa.feature.spectral_rolloff(S=S, sr=sr),
                        librosa.onset.onset_strength(y=y, sr=sr)[None]])
    mfcc = librosa.feature.mfcc(y=y, sr=sr)
    db = librosa.amplitude_to_db(librosa.feature.rms(y=y)[0])
    p20, p80 = np.percentile(db, [20, 80])

    def stats(x, with_mean=True):
        parts = [x.mean(axis=1)] if with_mean else []
        return parts + [x.std(axis=1), np.abs(librosa.feature.delta(x)).mean(axis=1)]

    return np.concatenate([[db.mean(), db.std(), p80 - p20], *stats(tracks),
                           *stats(mfcc, with_mean=False)])


def assert_matches_librosa(signals, tol=1e-3, top_band_tol=1e-3):
    """Every compared column within ``tol`` of its scale (the largest |librosa value|
    over the clips); the top contrast band (6.4-11 kHz) within ``top_band_tol``."""
    got = compute_batch(signals, SPEC).values[:, COMPARED].astype(np.float64)
    ref = np.stack([librosa_columns(y) for y in signals])
    scale = np.maximum(np.abs(ref).max(axis=0), 1e-12)
    err = np.abs(got - ref).max(axis=0) / scale
    names = np.array(SPEC.columns)[COMPARED]
    limit = np.where([n.startswith("contrast_6_") for n in names], top_band_tol, tol)
    bad = [(n, e) for n, e, lim in zip(names, err, limit) if e > lim]
    assert not bad, f"columns off librosa: {bad}"
    return err


def synthetic():
    """Speech-like clips, a modulated chirp, tone bursts and noise. The tones carry a
    noise floor 60 dB down: a pure tone's contrast valleys lie at the FFT's rounding
    noise (librosa's and serfast's float32 FFTs round differently there)."""
    t = np.arange(55125) / 22050
    floor = 1e-3 * rng_signal(len(t), 5)
    chirp = 0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    bursts = 0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0.3)
    return [speech("angry", 1), speech("sad", 2, seconds=1.0),
            (chirp + floor).astype(np.float32), (bursts + floor).astype(np.float32),
            rng_signal(30000, 1), rng_signal(6000, 2)]


def test_synthetic_signals_match_librosa():
    err = assert_matches_librosa(synthetic())
    assert np.median(err) < 1e-5


def test_real_speech_matches_librosa(ravdess_files):
    """Resampled to 22,050 Hz, a clip has next to nothing near Nyquist: the top band's
    valleys (its quietest 2 % of bins) lie at the float32 FFTs' rounding noise, where
    serfast's and librosa's FFTs differ (measured: 2e-3 of the scale in the mean, 8e-3 in
    the mean |delta|). Fed librosa's own |STFT|, the tracks agree within 1e-5."""
    assert_matches_librosa([load_clip(f, SPEC) for f in ravdess_files], top_band_tol=1e-2)


def test_shape_tracks_equal_librosa_on_librosas_stft(ravdess_files):
    y = load_clip(ravdess_files[0], SPEC)
    S = np.abs(librosa.stft(y))
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SPEC.sr))
    got = shape.shape_tracks(S.T[None], logmel.T[None], SPEC, np)[0]
    ref = np.vstack([librosa.feature.spectral_contrast(S=S, sr=SPEC.sr),
                     librosa.feature.spectral_flatness(S=S),
                     librosa.feature.spectral_rolloff(S=S, sr=SPEC.sr),
                     librosa.onset.onset_strength(y=y, sr=SPEC.sr)[None]]).T
    assert (np.abs(got - ref).max(axis=0) <= 1e-5 * np.abs(ref).max(axis=0)).all()


def test_contrast_bands_are_librosas():
    bands = shape.contrast_bands(SPEC)
    assert len(bands) == 7 and len(SHAPE_TRACKS) == 10
    assert bands[0][0] == 0 and bands[-1][1] == SPEC.n_bins
    assert all(a[1] <= b[0] + 1 for a, b in zip(bands, bands[1:]))  # bands overlap by one bin


def test_cpu_kernels_take_the_values_a_sort_takes():
    """The CPU's band extremes and roll-off bins against NumPy: ties, silent frames, a
    band as wide as its quantile count, and frames of the real spectrum grid."""
    from serfast.features.shape_kernels import band_extremes, rolloff_bins

    rng = np.random.default_rng(3)
    mag = (rng.random((40, SPEC.n_bins)) ** 4).astype(np.float32)
    mag[1] = 0.0
    mag[2] = 0.25
    mag[3, ::2] = mag[3, 1::2] = np.float32(0.5)  # many ties
    mag[4] = np.round(mag[4] * 4) / 4  # few distinct values
    bands = shape.contrast_bands(SPEC) + ((10, 13, 3), (20, 29, 4))
    lo, hi, count = (np.array(c, np.int64) for c in zip(*bands))
    got = np.empty((len(mag), 2 * len(bands)))
    band_extremes(mag, lo, hi, count, got)
    for k, (a, b, c) in enumerate(bands):
        ranked = np.sort(mag[:, a:b].astype(np.float64), axis=1)
        np.testing.assert_allclose(got[:, k], ranked[:, -c:].mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(got[:, len(bands) + k], ranked[:, :c].mean(axis=1),
                                   rtol=1e-12)
    bins = np.empty(len(mag), np.int64)
    rolloff_bins(mag, np.float32(shape.ROLL_PERCENT), bins)
    energy = np.cumsum(mag, axis=1)
    want = (energy < np.float32(shape.ROLL_PERCENT) * energy[:, -1:]).sum(axis=1)
    np.testing.assert_array_equal(bins, np.minimum(want, SPEC.n_bins - 1))


def test_delta_of_a_line_is_its_slope_at_any_length():
    for t in (1, 2, 5, 8, 9, 30):
        x = (3.0 * np.arange(t) - 7.0)[None, :, None]
        want = 0.0 if t == 1 else 3.0
        assert np.allclose(shape.delta(x, np), want)


def test_loudness_slopes_of_a_known_contour():
    """A contour rising 1 dB per frame then falling 2 dB per frame: the smoothed slopes
    are those rates in dB/s where the moving average sees one ramp."""
    up, down = np.arange(40.0), 39.0 - 2.0 * np.arange(1, 21)
    db = np.concatenate([up, down])[None] - 100.0
    stats = shape.loudness_stats(db, SPEC, np)[0]
    rate = SPEC.sr / SPEC.hop_length
    assert stats[0] == pytest.approx(db.mean()) and stats[1] == pytest.approx(db.std())
    assert stats[2] == pytest.approx(np.diff(np.percentile(db, [20, 80]))[0])
    assert 0.9 * rate < stats[3] <= rate and -2 * rate <= stats[4] < -1.5 * rate
    flat = shape.loudness_stats(np.full((1, 30), -20.0), SPEC, np)[0]
    assert np.array_equal(flat, [-20.0, 0, 0, 0, 0])


@pytest.mark.parametrize("name", ["silence", "one_sample", "clipped", "dc_offset", "short"])
def test_bad_audio_gives_finite_columns(name):
    t = np.arange(22050) / 22050
    y = {"silence": np.zeros(22050), "one_sample": np.array([0.3]),
         "clipped": np.clip(3 * np.sin(2 * np.pi * 180 * t), -1, 1),
         "dc_offset": 0.5 + 0.1 * np.sin(2 * np.pi * 150 * t),
         "short": rng_signal(700, 3)}[name].astype(np.float32)
    batch = compute_batch([y], FeatureSpec(name="all"), frames=True)
    assert np.isfinite(batch.values).all() and np.isfinite(batch.frames[0]).all()
