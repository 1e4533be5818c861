"""Window features from a channel's frames equal the per-window computation."""

from __future__ import annotations

import glob
import os
from dataclasses import replace

import numpy as np
import pytest

from serfast.calls.window_features import ChannelFrames, frame_time_sums, inside_frames
from serfast.features.cpu import compute_batch
from serfast.features.spec import FeatureSpec

SPEC = FeatureSpec()
ALL = FeatureSpec(name="all")
SR, HOP = SPEC.sr, SPEC.hop_length
WIN = int(round(SPEC.duration * SR))
CORPORA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora")


def voice(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllables of a gliding harmonic voice with pauses of near silence, plus hiss."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    on = (np.sin(2 * np.pi * 2.5 * t) > -0.2) & (np.sin(2 * np.pi * 0.21 * t) > -0.6)
    return (0.2 * y * on + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)


def assert_close(got, want, spec=SPEC):
    """Every column within 1e-4 of that column's scale (largest |value|); with prosody,
    the pitch and voice columns exactly equal (the same observations and decode)."""
    scale = np.abs(want).max(axis=0) + 1e-30
    worst = (np.abs(got - want) / scale).max(axis=0)
    assert worst.max() <= 1e-4, spec.columns[int(worst.argmax())]
    if spec.has_prosody:
        at = slice(spec.slices["pitch"].start, spec.slices["voice"].stop)
        np.testing.assert_array_equal(got[:, at], want[:, at])


def test_the_speaker_embedding_is_left_to_the_caller():
    with pytest.raises(ValueError, match="without the speaker embedding"):
        ChannelFrames(replace(SPEC, embedding=True))


def test_inside_frames_are_those_without_padding():
    t0, t1 = inside_frames(WIN, SPEC)
    assert (t0, t1) == (2, 106)  # 108 frames, two at each edge overhang
    for t in range(t0, t1):
        assert t * HOP - SPEC.n_fft // 2 >= 0 and t * HOP + SPEC.n_fft // 2 <= WIN
    assert inside_frames(1000, SPEC)[1] <= inside_frames(1000, SPEC)[0]


@pytest.mark.parametrize("n_fft, hop, shift", [(2048, 512, 0), (1024, 256, 0), (1024, 300, 0),
                                             (2048, 512, 100)])
def test_frame_time_sums_equal_the_sums_of_each_frame(n_fft, hop, shift):
    """A channel's block power sums, and its frames' energy and zero crossings, summed from
    the blocks where frames are whole blocks, sample by sample where not (``shift``: the
    frames off the blocks' grid)."""
    y = np.random.default_rng(7).normal(0, 0.1, 30000).astype(np.float32)
    y[::7] = 0.0  # exact zeros: |x| <= 1e-10 is no sign
    block0, n_blocks, n_frames_ = 3 * hop, 20, 20 - n_fft // hop + 1
    frame0 = block0 + shift
    powers, energy = np.empty((n_blocks, 4)), np.empty(n_frames_)
    crossings = np.empty(n_frames_, np.int64)
    frame_time_sums(y, block0, hop, frame0, n_fft, powers, energy, crossings)
    blocks = y[block0:block0 + n_blocks * hop].astype(np.float64).reshape(n_blocks, hop)
    want = np.stack([(blocks ** k).sum(axis=1) for k in range(1, 5)], axis=1)
    np.testing.assert_allclose(powers, want, rtol=1e-12, atol=1e-12)
    negative = y < -1e-10
    for t in range(n_frames_):
        frame = y[frame0 + t * hop:frame0 + t * hop + n_fft].astype(np.float64)
        sign = negative[frame0 + t * hop:frame0 + t * hop + n_fft]
        assert crossings[t] == np.count_nonzero(sign[1:] != sign[:-1])
        np.testing.assert_allclose(energy[t], (frame * frame).sum(), rtol=1e-12)


@pytest.mark.parametrize("spec", [SPEC, ALL], ids=["seed", "all"])
@pytest.mark.parametrize("frames", [False, True])
def test_windows_equal_the_per_window_computation(frames, spec):
    y = voice(20.0)
    starts = [0, 7 * HOP, 100 * HOP, 101 * HOP, 400 * HOP, (len(y) - WIN) // HOP * HOP]
    ends = [s + WIN for s in starts]
    starts += [len(y) // HOP * HOP - 60 * HOP, 200 * HOP]  # shorter windows
    ends += [len(y), 200 * HOP + 3000]  # the second has no inside frame
    got = ChannelFrames(spec).features(y, 0, starts, ends, frames)
    want = compute_batch([y[a:b] for a, b in zip(starts, ends)], spec, frames=frames)
    assert_close(got.values, want.values, spec)
    if frames:
        for g, w in zip(got.frames, want.frames):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-3)


@pytest.mark.parametrize("spec", [SPEC, ALL], ids=["seed", "all"])
def test_streamed_and_trimmed_audio_gives_the_same_windows(spec):
    """The channel held in pieces (older audio dropped) gives the same rows as whole."""
    y = voice(30.0, seed=1)
    whole = ChannelFrames(spec)
    streamed = ChannelFrames(spec)
    rows_whole, rows_streamed = [], []
    step = 54 * HOP
    for s in range(0, len(y) - WIN, step):
        base = max(0, s - 3 * step) // HOP * HOP
        streamed.trim(base)
        held = y[base:s + WIN + 5 * HOP]
        rows_streamed.append(streamed.features(held, base, [s], [s + WIN], False).values)
        rows_whole.append(whole.features(y, 0, [s], [s + WIN], False).values)
    np.testing.assert_array_equal(np.concatenate(rows_streamed), np.concatenate(rows_whole))
    want = compute_batch([y[s:s + WIN] for s in range(0, len(y) - WIN, step)], spec).values
    assert_close(np.concatenate(rows_whole), want, spec)
    assert len(streamed.done) < len(whole.done) / 2  # the streamed one kept less
    if spec.has_prosody:
        assert len(streamed.prosody.pitch.done) < len(whole.prosody.pitch.done) / 2


@pytest.mark.parametrize("spec", [SPEC, ALL], ids=["seed", "all"])
def test_silence_and_a_constant_window(spec):
    y = np.zeros(4 * WIN, np.float32)
    y[WIN:2 * WIN] = 0.25
    starts = [0, WIN // HOP * HOP, 3 * WIN // HOP * HOP]
    got = ChannelFrames(spec).features(y, 0, starts, [s + WIN for s in starts], False)
    want = compute_batch([y[s:s + WIN] for s in starts], spec).values
    assert np.isfinite(got.values).all()
    assert_close(got.values, want, spec)


@pytest.mark.skipif(not glob.glob(os.path.join(CORPORA, "ravdess", "*", "*.flac")),
                    reason="no RAVDESS under ../shared/corpora")
@pytest.mark.parametrize("spec", [SPEC, ALL], ids=["seed", "all"])
def test_real_speech(spec):
    import librosa

    files = sorted(glob.glob(os.path.join(CORPORA, "ravdess", "*", "*.flac")))[:8]
    y = np.concatenate([librosa.load(f, sr=SR)[0] for f in files]).astype(np.float32)
    starts = list(range(0, len(y) - WIN, 27 * HOP))
    got = ChannelFrames(spec).features(y, 0, starts, [s + WIN for s in starts], False)
    want = compute_batch([y[s:s + WIN] for s in starts], spec).values
    assert_close(got.values, want, spec)


def test_channel_pitch_tracks_equal_the_per_window_tracks():
    """Shared pitch-frame observations + each window's own decode = pitch_tracks of the
    window, also for windows too short to have an inside pitch frame."""
    from serfast.calls.window_prosody import ChannelPitch, inside_pitch_frames
    from serfast.features.pitch import HOP_LENGTH, pitch_tracks

    assert inside_pitch_frames(WIN) == (2, 214)
    assert inside_pitch_frames(300)[1] <= inside_pitch_frames(300)[0]
    y = voice(12.0, seed=3)
    starts = [0, 2 * HOP, 3 * HOP, 90 * HOP, 91 * HOP, 300 * HOP]
    ends = [s + WIN for s in starts[:4]] + [91 * HOP + 300, 300 * HOP + 700]
    channel = ChannelPitch(SR)
    for got, a, b in zip(channel.tracks(y, 0, starts, ends), starts, ends):
        for g, w in zip(got, pitch_tracks(y[a:b], SR)):
            np.testing.assert_array_equal(g, w)
    inside = set()  # each inside pitch frame was observed once, for every window
    for a, b in zip(starts, ends):
        p0, p1 = inside_pitch_frames(b - a)
        inside |= set(range(a // HOP_LENGTH + p0, a // HOP_LENGTH + p1))
    assert set(np.flatnonzero(channel.done)) == inside


def test_channel_voicing_tracks_equal_the_per_window_tracks(monkeypatch):
    """Shared Praat voicing candidates + each window's own peak and path = praat_voicing of
    the window: windows of different loudness, a silent one, one too short for a frame,
    streamed with a trimmed base; no frame's candidates are computed twice."""
    from serfast.calls.window_prosody import ChannelVoicing
    from serfast.features import praat_voicing as voicing

    y = voice(14.0, seed=5)
    y[int(6.0 * SR):int(9.0 * SR)] *= np.float32(0.02)  # a quiet stretch
    y[int(10.0 * SR):int(12.6 * SR)] = 0.0  # silence
    expected = {}
    calls = [(0, [0, 2 * HOP, 3 * HOP, 11 * HOP], None),
             (40 * HOP, [40 * HOP, 41 * HOP, 50 * HOP], None),
             (110 * HOP, [110 * HOP, 120 * HOP, 216 * HOP, 240 * HOP], [240 * HOP + 400])]
    for _, starts, short_ends in calls:
        ends = [s + WIN for s in starts]
        if short_ends:
            ends[-1:] = short_ends
        for a, b in zip(starts, ends):
            expected[a, b] = voicing.praat_voicing(y[a:b], SR, 1 + (b - a) // 256)
    assert expected[0, WIN][1].any() and not expected[240 * HOP, 240 * HOP + 400][1].any()
    computed, base_now = [], [0]
    compute = voicing.frame_candidates

    def counting(audio, sr, centres):
        computed.extend((centres + base_now[0]).tolist())
        return compute(audio, sr, centres)

    monkeypatch.setattr(voicing, "frame_candidates", counting)
    channel = ChannelVoicing(SR)
    for base, starts, short_ends in calls:
        base_now[0] = base
        channel.trim(base)
        ends = [s + WIN for s in starts]
        if short_ends:
            ends[-1:] = short_ends
        audio = y[base:max(ends)]
        for got, a, b in zip(channel.tracks(audio, base, starts, ends), starts, ends):
            for g, w in zip(got, expected[a, b]):
                np.testing.assert_array_equal(g, w)
    assert computed and len(computed) == len(set(computed))
    assert channel.first == 110 * HOP // 256


@pytest.mark.parametrize("frames", [False, True])
def test_engine_windows_take_pitch_and_voice_from_the_channel(frames, monkeypatch):
    """Where the engine computes windows whole (the GPU path; CuPy stands in as NumPy in
    tests/test_gpu.py), their pitch and voice columns come from the channel's pitch frames
    observed once (ChannelProsody), and equal each window's own exactly."""
    from serfast.calls.window_prosody import ChannelProsody
    from serfast.features import shape

    y = voice(12.0, seed=3)
    starts = [0, 100 * HOP, 101 * HOP, 300 * HOP, 200 * HOP]
    ends = [s + WIN for s in starts[:-1]] + [200 * HOP + 3000]
    clips = [y[s:e] for s, e in zip(starts, ends)]
    want = compute_batch(clips, ALL, frames=frames)
    prosody = ChannelProsody(ALL)
    asked = []

    def pitch_voice(rows):
        asked.append(list(rows))
        return prosody.pitch_voice(y, 0, [starts[i] for i in rows], [ends[i] for i in rows])

    def per_clip(*_):
        raise AssertionError("a window's pitch was computed on its own")

    monkeypatch.setattr(shape, "pitch_voice", per_clip)
    got = compute_batch(clips, ALL, frames=frames, pitch_voice=pitch_voice)
    assert asked == [list(range(len(clips)))]
    np.testing.assert_array_equal(got.values, want.values)
    if frames:
        for a, b in zip(got.frames, want.frames):
            np.testing.assert_array_equal(a, b)
    assert prosody.pitch.done.sum() < sum(1 + len(c) // 256 for c in clips)  # shared
