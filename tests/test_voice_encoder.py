"""The shipped speaker encoder: Resemblyzer's input, unit vectors, voices told apart, and
emotion within a voice."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serfast.features import voice_encoder as ve

from conftest import RAVDESS


def test_partial_mels_are_resemblyzers_librosa_mel_spectrogram_at_minus_30_dbfs():
    import librosa

    y = np.random.default_rng(0).normal(0, 0.2, 25600).astype(np.float32)
    scaled = y * (10 ** (ve.LEVEL_DBFS / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    want = librosa.feature.melspectrogram(y=scaled, sr=16000, n_fft=400, hop_length=160,
                                          n_mels=40).T[:160]
    short = y[:8000]  # 0.5 s: zero-padded to 160 frames
    got, louder, padded, silent = ve.partial_mels([y, y * 30, short, np.zeros(16000, np.float32)])
    assert got.shape == (160, 40) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * want.max())
    np.testing.assert_allclose(louder, got, rtol=1e-5, atol=1e-9)
    assert not padded[60:].any() and not silent.any()
    np.testing.assert_array_equal(ve.partial_mels([short])[0], padded)  # alone as in a batch


def test_embeddings_are_unit_vectors_of_any_span(tmp_path):
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.1, 22050 * 6).astype(np.float32)
    audio[22050 * 3:22050 * 4] = 0.0  # a silent window still gets a finite vector
    starts, ends = [0, 22050 * 3, 22050 * 5], [22050 * 2, 22050 * 4, 22050 * 5 + 4410]
    base = 1000  # the channel's audio begins at sample 1000
    rows = ve.span_embeddings(audio, base, [s + base for s in starts],
                              [e + base for e in ends], 22050)
    assert rows.shape == (3, 512) and np.isfinite(rows).all()
    e = rows[:, :256]
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    again = ve.span_embeddings(audio, base, [starts[0] + base], [ends[0] + base], 22050)
    np.testing.assert_array_equal(again[0], rows[0])
    np.testing.assert_array_equal(rows[0], ve.clip_embeddings([audio[:22050 * 2]], 22050)[0])
    assert ve.span_embeddings(audio, 0, [], [], 22050).shape == (0, 512)


def test_real_voices_are_closer_to_themselves_than_to_others(ravdess_files):
    """40 RAVDESS clips, two per actor, in many emotions: the nearest other clip is the
    same actor's far more often than chance (1 in 39; measured 0.33), and same-actor pairs
    are more alike on average (measured margin 0.15)."""
    actors = np.array([f[-7:-5] for f in ravdess_files])
    vectors = []
    for path in ravdess_files:
        y, sr = sf.read(path, dtype="float32")
        vectors.append(ve.span_embeddings(y, 0, [0], [len(y)], sr)[0, :256])
    sim = np.array(vectors) @ np.array(vectors).T
    same = actors[:, None] == actors[None, :]
    np.fill_diagonal(sim, -np.inf)
    nearest_right = np.mean(actors[sim.argmax(axis=1)] == actors)
    np.fill_diagonal(same, False)
    off = ~same & ~np.eye(len(actors), dtype=bool)
    margin = sim[same].mean() - sim[off].mean()
    assert nearest_right >= 0.2, nearest_right
    assert margin >= 0.1, margin


def test_real_voices_standardised_per_speaker_tell_angry_from_sad():
    """RAVDESS actors 01-08, every sad and angry clip (128): each clip's encoder columns
    (``clip_embeddings``) minus its actor's mean; an actor left out is labelled by the
    nearer of the other actors' class means. Chance is 0.5; measured 0.85."""
    if not RAVDESS.is_dir():
        pytest.skip(f"real corpus not present at {RAVDESS}")
    files = sorted(str(p) for a in range(1, 9)
                   for p in (RAVDESS / f"Actor_{a:02d}").glob("03-01-0[45]-*.flac"))
    assert len(files) == 128
    actors = np.array([f.split("/")[-2] for f in files])
    angry = np.array([f.split("/")[-1][6:8] == "05" for f in files])
    vectors = np.array([ve.clip_embeddings([y], sr)[0]
                        for y, sr in (sf.read(f, dtype="float32") for f in files)])
    for a in set(actors):
        vectors[actors == a] -= vectors[actors == a].mean(axis=0)
    right = []
    for a in sorted(set(actors)):
        train, test = actors != a, actors == a
        axis = vectors[train & angry].mean(axis=0) - vectors[train & ~angry].mean(axis=0)
        right.append(np.mean((vectors[test] @ axis > 0) == angry[test]))
    assert np.mean(right) >= 0.75, right
