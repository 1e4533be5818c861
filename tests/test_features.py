"""Parity of the fused CPU kernels with the librosa reference, on synthetic and real audio."""

import numpy as np
import pytest

from serfast.io.audio import load_clip
from serfast.features.cpu import compute_batch
from serfast.features.reference import reference_features
from serfast.features.spec import FeatureSpec, n_frames

from conftest import rng_signal, speech

SPEC = FeatureSpec()
COLS = SPEC.columns[:-1]
CHROMA = np.array([c.startswith("chroma_") for c in COLS])


def relative_errors(signals):
    """Per-column max |serfast - librosa| divided by the column's scale."""
    got = compute_batch(signals, SPEC).values.astype(np.float64)
    ref = np.stack([reference_features(y, SPEC) for y in signals])
    scale = np.maximum(np.abs(ref).max(axis=0), 1e-12)
    return np.abs(got - ref).max(axis=0) / scale


def assert_parity(err, tol=1e-4, chroma_tol=1e-3):
    bad = [(c, e) for c, e, is_c in zip(COLS, err, CHROMA) if e > (chroma_tol if is_c else tol)]
    assert not bad, f"columns off librosa: {bad}"


def test_synthetic_speech_matches_librosa():
    t = np.arange(55125) / 22050
    chirp = (0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t)).astype(np.float32)
    signals = [speech("angry", 1), speech("sad", 2, sr=22050, seconds=1.0), chirp,
               rng_signal(30000, 1), rng_signal(3000, 2)]
    err = relative_errors(signals)
    # the tolerance: a pure chirp's bandwidth feels the float32 FFT's noise floor
    # (librosa runs its FFT in float64), so it is only within ~2e-4 of the column scale
    assert_parity(err, tol=1e-3)
    assert np.median(err) < 1e-5


def test_real_speech_matches_librosa(ravdess_files):
    signals = [load_clip(f, SPEC) for f in ravdess_files]
    err = relative_errors(signals)
    assert_parity(err, tol=1e-4, chroma_tol=1e-3)


def test_tiny_and_odd_lengths_match_librosa():
    signals = [rng_signal(n, n) for n in (1, 2, 511, 512, 513, 2047, 2048, 2049)]
    # skew/kurtosis of 1-2 samples are degenerate in scipy: compare the other columns
    got = compute_batch(signals, SPEC).values.astype(np.float64)
    ref = np.stack([reference_features(y, SPEC) for y in signals])
    finite = np.isfinite(ref)
    scale = np.nanmax(np.abs(ref), axis=0)
    assert (np.abs(got - ref)[finite] <= (1e-4 * np.broadcast_to(scale, ref.shape))[finite]).all()
    assert np.isfinite(got).all()


@pytest.mark.parametrize("n_fft, hop", [(2048, 512), (512, 128), (1024, 300), (2048, 500)])
def test_zcr_and_rms_match_librosa_for_any_frame_and_hop(n_fft, hop):
    """Block sums where frames fall on hop boundaries, the direct loop where they do not."""
    import librosa

    from serfast.features.cpu_kernels import time_features

    spec = FeatureSpec(n_fft=n_fft, hop_length=hop)
    for n in (1, 2, 100, hop - 1, hop, hop + 1, n_fft - 1, n_fft, n_fft + 1, 20000):
        y = rng_signal(n, n + hop)
        y[::7] = 0.0  # exact zeros: |x| <= 1e-10 is no sign
        out = np.empty(6)
        time_features(y, n_fft, hop, n_frames(n, spec), out)
        zcr = librosa.feature.zero_crossing_rate(y=y, frame_length=n_fft, hop_length=hop).mean()
        rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop).mean()
        np.testing.assert_allclose(out[:2], [zcr, rms], rtol=1e-6, atol=1e-9)


def test_silent_clip_is_finite_and_matches_where_librosa_is_defined():
    silent = np.zeros(20000, np.float32)
    got = compute_batch([silent], SPEC).values[0].astype(np.float64)
    ref = reference_features(silent, SPEC)
    assert np.isfinite(got).all()
    defined = np.isfinite(ref)
    assert np.allclose(got[defined], ref[defined], atol=1e-6)
    skew, kurt = COLS.index("wave_skew"), COLS.index("wave_kurtosis")
    assert got[skew] == 0.0 and got[kurt] == 0.0  # undefined for a constant signal


def test_batching_does_not_change_a_clip():
    a, b, c = speech("happy", 3), rng_signal(40000, 5), speech("sad", 4, seconds=1.2)
    together = compute_batch([a, b, c], SPEC).values
    alone = np.stack([compute_batch([s], SPEC).values[0] for s in (a, b, c)])
    assert np.array_equal(together, alone)


def test_frame_level_output_matches_librosa():
    import librosa

    y = speech("fearful", 5)
    batch = compute_batch([y], SPEC, frames=True)
    frames = batch.frames[0]
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SPEC.sr)).T
    mfcc = librosa.feature.mfcc(y=y, sr=SPEC.sr).T
    assert frames.shape == (logmel.shape[0], SPEC.n_mels + SPEC.n_mfcc)
    assert np.abs(frames[:, :128] - logmel).max() < 1e-3  # dB
    assert np.abs(frames[:, 128:] - mfcc).max() < 1e-3 * np.abs(mfcc).max()
    # the clip means in the store are the means of these frames
    mfcc_cols = [i for i, c in enumerate(COLS) if c.startswith("mfcc_")]
    assert np.allclose(batch.values[0, mfcc_cols], frames[:, 128:].mean(axis=0), atol=1e-3)


def test_feature_count_matches_the_column_names():
    for spec in (SPEC, FeatureSpec(n_mels=64, n_mfcc=13, n_chroma=24)):
        assert spec.n_features == len(spec.columns) - 1
        assert compute_batch([rng_signal(3000)], spec).values.shape == (1, spec.n_features)


@pytest.mark.parametrize("spec", [SPEC, FeatureSpec(n_mels=64, n_mfcc=13, n_chroma=24),
                                  FeatureSpec(n_mels=40, n_mfcc=40, n_chroma=6)])
def test_slices_name_the_columns_of_each_group(spec):
    cols, at = spec.columns, spec.slices
    groups = ["zcr", "chroma", "mfcc", "rms", "mel", "moments", "centroid", "bandwidth",
              "gender"]
    assert [at[g].start for g in groups[1:]] == [at[g].stop for g in groups[:-1]]
    assert at["zcr"].start == 0 and at["gender"].stop == len(cols)
    for g, size in [("chroma", spec.n_chroma), ("mfcc", spec.n_mfcc), ("mel", spec.n_mels)]:
        assert cols[at[g]] == [f"{g}_{i:0{3 if g == 'mel' else 2}d}" for i in range(size)]
    assert cols[at["moments"]] == ["wave_mean", "wave_var", "wave_skew", "wave_kurtosis"]
    assert [cols[at[g]] for g in ("zcr", "rms", "centroid", "bandwidth", "gender")] == [
        ["zcr_mean"], ["rms_mean"], ["centroid_mean"], ["bandwidth_mean"], ["gender"]]
    assert cols[at["acoustic"]] == spec.acoustic_columns and at["acoustic"].stop == spec.n_acoustic
    assert cols[at["stats"]] == spec.stat_columns and len(spec.stat_columns) == 6
    assert at["values"] == slice(0, spec.n_features)
    if spec == SPEC:
        assert (spec.n_acoustic, spec.n_features, len(cols)) == (162, 168, 169)


def test_the_mfcc_clamp_follows_top_db_in_kernels_and_reference():
    spec = FeatureSpec(top_db=30.0)
    y = speech("angry", 2)
    mfcc = spec.slices["mfcc"]
    got = compute_batch([y], spec).values[0, mfcc].astype(np.float64)
    ref = reference_features(y, spec)[mfcc]
    default = compute_batch([y], SPEC).values[0, mfcc]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.abs(got - default).max() > 1e-2 * np.abs(ref).max()  # the clamp mattered


def test_other_band_counts_match_librosa():
    """n_chroma is also estimate_tuning's bins_per_octave (librosa's chroma_stft)."""
    spec = FeatureSpec(n_mels=64, n_mfcc=13, n_chroma=24)
    signals = [speech("happy", 2), speech("angry", 3, seconds=2.0)]
    got = compute_batch(signals, spec).values.astype(np.float64)
    ref = np.stack([reference_features(y, spec) for y in signals])
    err = np.abs(got - ref).max(axis=0) / np.maximum(np.abs(ref).max(axis=0), 1e-12)
    assert err.max() < 1e-3, spec.columns[int(err.argmax())]


def test_empty_clip_is_rejected():
    with pytest.raises(ValueError):
        compute_batch([np.zeros(0, np.float32)], SPEC)


def test_filter_bank_disk_cache_round_trips(tmp_path, monkeypatch):
    from serfast.features import filterbanks

    spec = FeatureSpec(n_mels=64)
    monkeypatch.setenv("SERFAST_CACHE", str(tmp_path))
    built = filterbanks.cached_filter_banks(spec)
    assert len(list(tmp_path.glob("banks-*.npz"))) == 1
    loaded = filterbanks.cached_filter_banks(spec)
    for name in built.__dataclass_fields__:
        assert np.array_equal(getattr(built, name), getattr(loaded, name)), name


def test_chunked_stft_gives_the_same_features(monkeypatch):
    from serfast.features import cpu as features

    signals = [speech("angry", 1), rng_signal(700, 3), speech("sad", 2, seconds=2.0)]
    whole = compute_batch(signals, SPEC, frames=True)
    monkeypatch.setattr(features, "CHUNK_FRAMES", 37)  # cuts inside every clip
    cut = compute_batch(signals, SPEC, frames=True)
    assert np.array_equal(whole.values, cut.values)
    assert all(np.array_equal(a, b) for a, b in zip(whole.frames, cut.frames))


def test_long_clip_across_many_chunks_matches_librosa():
    y = np.tile(speech("happy", 4, seconds=5.0), 8)  # 40 s: 1,723 frames, two chunks
    err = relative_errors([y, speech("sad", 1)])
    assert_parity(err, tol=1e-4, chroma_tol=1e-3)
