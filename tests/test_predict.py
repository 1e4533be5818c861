"""Tests of `serfast predict`: channels, VAD, windows, outputs, resume, errors, CLI.

The model is a test double with the Predictor contract: a nearest-centroid classifier
fitted on engine features of synthetic speech (``serfast.demo.synth_clip``).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from serfast.io.audio import resample
from serfast.demo import synth_clip
from serfast.features.cpu import compute_batch
from serfast.features.spec import FeatureSpec

EMOTIONS = ["neutral", "happy", "sad", "angry"]
SR = 8000


class CentroidPredictor:
    """Nearest standardised centroid; probabilities from a softmax of distances."""

    needs_frames = False

    def __init__(self, spec: FeatureSpec, centroids, mean, std):
        self.labels, self.spec = list(EMOTIONS), spec
        self.centroids, self.mean, self.std = centroids, mean, std
        self.calls: list[int] = []

    def predict_proba(self, values, frames=None, groups=None):
        assert values.shape[1] == len(self.spec.columns) and np.isnan(values[:, -1]).all()
        assert groups is not None and len(groups) == len(values)
        self.calls.append(len(values))
        z = (values[:, :-1] - self.mean) / self.std
        d = np.sqrt(((z[:, None, :] - self.centroids[None]) ** 2).mean(axis=2))
        e = np.exp(-(d - d.min(axis=1, keepdims=True)) * 8)
        return e / e.sum(axis=1, keepdims=True)


class ThreadCheckingPredictor(CentroidPredictor):
    """Scores only where every BLAS and OpenMP library loaded in its process has one thread."""

    def predict_proba(self, values, frames=None, groups=None):
        from threadpoolctl import threadpool_info

        libs = threadpool_info()
        many = [lib["filepath"] for lib in libs if lib["num_threads"] != 1]
        if not libs or many:
            raise RuntimeError(f"{len(libs)} libraries, more than one thread: {many}")
        return super().predict_proba(values, frames, groups)


def telephone(y: np.ndarray, sr: int = 22050) -> np.ndarray:
    """8 kHz version of a clip (what a µ-law WAV file will hold)."""
    return resample(y, sr, SR)


def fit_predictor(spec: FeatureSpec = FeatureSpec()) -> CentroidPredictor:
    """The test double, fitted on 8 kHz synthetic clips of 4 speakers (``spec``'s set)."""
    rows, labels = [], []
    for k, emotion in enumerate(EMOTIONS):
        for speaker in (1, 2, 3, 4):
            y = synth_clip(emotion, speaker, 0, 22050, 3.0)
            y = resample(telephone(y), SR, spec.sr)
            rows.append(y[int(0.25 * spec.sr):int(2.75 * spec.sr)])
            labels.append(k)
    values = compute_batch(rows, spec).values
    mean, std = values.mean(axis=0), values.std(axis=0) + 1e-6
    z = (values - mean) / std
    centroids = np.stack([z[np.array(labels) == k].mean(axis=0) for k in range(len(EMOTIONS))])
    return CentroidPredictor(spec, centroids, mean, std)


@pytest.fixture(scope="session")
def predictor() -> CentroidPredictor:
    return fit_predictor()


def call(plan: list[tuple[int, str, int, float]], seconds: float, noise: float = 0.002,
         seed: int = 0) -> np.ndarray:
    """(n, 2) float32 stereo call at 8 kHz: (channel, emotion, speaker, start s) clips of
    3.5 s on a noise floor."""
    rng = np.random.default_rng(seed)
    y = noise * rng.standard_normal((int(seconds * SR), 2)).astype(np.float32)
    for ch, emotion, speaker, start in plan:
        clip = telephone(synth_clip(emotion, speaker, 1, 22050, 3.5))
        a = int(start * SR)
        y[a:a + len(clip), ch] += clip[:len(y) - a]
    return y


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ reading and VAD

def test_ulaw_and_alaw_stereo_blocks_equal_whole_channels(tmp_path):
    from serfast.io.audio import channel_blocks

    y = call([(0, "angry", 1, 0.5), (1, "sad", 2, 4.5)], 9.0)
    for subtype in ("ULAW", "ALAW"):
        path = str(tmp_path / f"{subtype}.wav")
        sf.write(path, y, SR, subtype=subtype)
        decoded = sf.read(path, dtype="float32")[0]
        assert np.abs(decoded - y).max() < 0.02  # 8-bit companding, not garbage
        for ch in (0, 1, None):
            whole = decoded[:, ch] if ch is not None else decoded.mean(axis=1, dtype=np.float32)
            blocks = list(channel_blocks(path, ch, 22050, block_seconds=0.7))
            assert len(blocks) > 10
            np.testing.assert_array_equal(np.concatenate(blocks), resample(whole, SR, 22050))


def test_stream_errors_are_one_line(tmp_path):
    from serfast.io.audio import AudioError, channel_blocks

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError) as err:
        list(channel_blocks(str(bad), 0, 22050))
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot decode")
    mono = str(tmp_path / "mono.wav")
    sf.write(mono, np.zeros(800, np.float32), SR)
    with pytest.raises(AudioError, match="no channel 1"):
        list(channel_blocks(mono, 1, 22050))


def hold_music(seconds: float, sr: int = 22050) -> np.ndarray:
    """Chords changing every 0.5 s, peak 0.3."""
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for i in range(int(seconds * 2)):
        m = (t >= i * 0.5) & (t < (i + 1) * 0.5)
        for ratio in (1.0, 1.25, 1.5):
            y[m] += np.sin(2 * np.pi * (220 + 40 * (i % 5)) * ratio * t[m])
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_vad_keeps_speech_drops_silence_noise_and_music():
    from serfast.calls.vad import SpeechDetector

    sr, rng = 22050, np.random.default_rng(1)
    parts = [np.zeros(3 * sr), synth_clip("angry", 1, 0, sr, 3.5),  # speech 3.4-6.2 s
             0.004 * rng.standard_normal(6 * sr),  # a burst of line noise 6.5-12.5
             hold_music(10), np.zeros(2 * sr),  # hold music 12.5-22.5
             synth_clip("sad", 2, 0, sr, 3.5), np.zeros(4 * sr)]  # speech 24.9-27.7
    y = np.concatenate(parts).astype(np.float32)
    y += 0.001 * rng.standard_normal(len(y)).astype(np.float32)
    found = []
    for block in (sr // 3, 7 * sr, len(y)):
        vad, regions = SpeechDetector(sr, 512), []
        for i in range(0, len(y), block):
            regions += vad.push(y[i:i + block])
        regions += vad.finish()
        found.append([(a / sr, b / sr) for a, b in regions])
    assert found[0] == found[1] == found[2]  # block size does not matter
    (a1, b1), (a2, b2) = found[0]
    assert 3.0 < a1 < 3.6 and 6.0 < b1 < 7.0
    assert 24.5 < a2 < 25.1 and 27.5 < b2 < 28.2


def test_vad_hears_speech_under_mains_hum():
    """The levels are measured in the speech band: a hum 10 dB louder than the speech
    hides it from a full-band detector, not from the default one."""
    from serfast.calls.vad import SpeechDetector, VadOptions

    sr, rng = 22050, np.random.default_rng(2)
    speech = synth_clip("sad", 1, 0, sr, 3.5)  # -34 dBFS
    y = np.zeros(14 * sr)
    y[4 * sr:4 * sr + len(speech)] += speech  # speech 4.3-7.2 s
    y += 0.1 * np.sin(2 * np.pi * 50 * np.arange(len(y)) / sr)  # -23 dBFS
    y = (y + 0.001 * rng.standard_normal(len(y))).astype(np.float32)
    found = {}
    for low in (250.0, 0.0):
        vad = SpeechDetector(sr, 512, VadOptions(band_low_hz=low))
        found[low] = [(a / sr, b / sr) for a, b in vad.push(y) + vad.finish()]
    assert found[0.0] == []
    [(a, b)] = found[250.0]
    assert 4.0 < a < 4.6 and 7.0 < b < 7.5


def test_region_windows_cover_speech():
    from serfast.calls.channel import region_windows

    assert region_windows(1000, 2000, 3000, 1500) == [0]  # short: centred
    assert region_windows(1000, 2000, 3000, 1500, leads=(0,)) == [1000]  # like training crops
    assert region_windows(1000, 2000, 3000, 1500, leads=(0, 200, -1)) == [0, 800, 1000]
    assert region_windows(100, 2000, 3000, 1500, leads=(0, 200, 400)) == [0, 100]
    starts = region_windows(0, 10000, 3000, 1500)
    assert starts == [0, 1500, 3000, 4500, 6000, 7000]  # hop, then one ending at the end
    assert region_windows(0, 6000, 3000, 1500) == [0, 1500, 3000]


def test_telephone_augmentation_adds_line_noise():
    from serfast.io.augment import telephone

    t = np.arange(22050) / 22050
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * (t < 0.5)).astype(np.float32)
    codec = telephone(y, 22050, None)  # no rng: the codec alone
    assert codec.shape == y.shape and np.abs(codec[15000:]).max() < 1e-3
    noisy = [telephone(y, 22050, np.random.default_rng(s)) for s in range(10)]
    tails = [float(np.sqrt(np.mean(n[15000:] ** 2))) for n in noisy]
    assert sum(r > 1e-3 for r in tails) >= 5  # most copies carry line noise ...
    assert max(tails) < 0.3 * 10 ** (-15 / 20)  # ... at least 15 dB under the speech


# ------------------------------------------------------------------ the pipeline

from serfast.calls.predict import PredictOptions, predict_archive  # noqa: E402

PLAN = [(0, "angry", 1, 2.0), (1, "sad", 2, 7.0), (0, "angry", 3, 12.0), (1, "sad", 4, 17.0)]


@pytest.fixture
def archive(tmp_path):
    """Two stereo µ-law calls, an A-law copy with channels swapped, and a broken file."""
    root = tmp_path / "calls"
    root.mkdir()
    y = call(PLAN, 24.0)
    sf.write(str(root / "a.wav"), y, SR, subtype="ULAW")
    sf.write(str(root / "b.wav"), y[:, ::-1], SR, subtype="ALAW")
    (root / "c_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    (root / "notes.txt.md").write_text("not audio")
    return root


def run(sources, predictor, out, **kw):
    opts = PredictOptions(workers=1, summary=str(out.parent / "summary.csv"), **kw)
    return predict_archive([str(s) for s in sources], predictor, str(out), opts)


def test_channels_are_separate_speakers_and_bad_files_are_error_rows(archive, predictor, tmp_path):
    predictor.calls.clear()  # the fixture is shared by the session's tests
    rep = run([archive], predictor, tmp_path / "labels.csv")
    assert (rep.files, rep.channels, rep.errors) == (3, 5, 1)
    rows = read_csv(tmp_path / "labels.csv")
    assert list(rows[0]) == (["file", "channel", "start", "end", "label", "confidence"]
                             + [f"p_{e}" for e in EMOTIONS] + ["error"])
    broken = [r for r in rows if r["file"].endswith("c_broken.wav")]
    assert len(broken) == 1 and broken[0]["error"].startswith("cannot decode")
    assert "\n" not in broken[0]["error"] and broken[0]["label"] == ""
    for name, swap in (("a.wav", 0), ("b.wav", 1)):
        for ch, emotion, _, start in PLAN:
            mine = [r for r in rows if r["file"].endswith(name) and r["channel"] == str(ch ^ swap)
                    and float(r["start"]) < start + 3.5 and float(r["end"]) > start]
            assert len(mine) >= 1 and all(r["label"] == emotion for r in mine)
        for r in (r for r in rows if r["file"].endswith(name)):
            speaker_starts = [s for c, _, _, s in PLAN if c == int(r["channel"]) ^ swap]
            # every window lies over that channel's own speech, never the other channel's
            assert any(s - 1.3 < float(r["start"]) and float(r["end"]) < s + 3.5 + 1.3
                       for s in speaker_starts)
            p = np.array([float(r[f"p_{e}"]) for e in EMOTIONS])
            assert abs(p.sum() - 1) < 1e-3 and float(r["confidence"]) == pytest.approx(p.max(), abs=1e-4)
            assert float(r["end"]) - float(r["start"]) == pytest.approx(2.5, abs=1e-3)
    # one model call per channel, all its windows at once (per-speaker normalisation):
    # two channels of each of the two readable files
    assert len(predictor.calls) == 4


def test_url_manifest_labels_like_local_files(archive, predictor, tmp_path):
    """A manifest of fsspec URLs (here memory://) is labelled exactly as the local files."""
    fsspec = pytest.importorskip("fsspec")
    urls = [f"memory://serfast-predict/{tmp_path.name}/{name}" for name in ("a.wav", "b.wav")]
    for url, name in zip(urls, ("a.wav", "b.wav")):
        with fsspec.open(url, "wb") as fh:
            fh.write((archive / name).read_bytes())
    manifest = tmp_path / "urls.csv"
    manifest.write_text("path\n" + "".join(u + "\n" for u in urls))
    (tmp_path / "url").mkdir()
    (tmp_path / "local").mkdir()
    try:
        run([manifest], predictor, tmp_path / "url" / "labels.csv")
    finally:
        for url in urls:
            fsspec.filesystem("memory").rm(url)
    run([archive / "a.wav", archive / "b.wav"], predictor, tmp_path / "local" / "labels.csv")
    for name in ("labels.csv", "summary.csv"):
        by_url, local = (read_csv(tmp_path / d / name) for d in ("url", "local"))
        assert [r["file"] for r in by_url] == [urls[r["file"].endswith("b.wav")] for r in local]
        assert [{**r, "file": ""} for r in by_url] == [{**r, "file": ""} for r in local]


def test_summary_rows(archive, predictor, tmp_path):
    run([archive / "a.wav"], predictor, tmp_path / "labels.csv")
    rows = {r["channel"]: r for r in read_csv(tmp_path / "summary.csv")}
    assert set(rows) == {"0", "1"}
    assert rows["0"]["dominant"] == "angry" and rows["1"]["dominant"] == "sad"
    for ch, r in rows.items():
        assert float(r["seconds"]) == pytest.approx(24.0)
        assert 4.0 < float(r["speech_seconds"]) < 7.5  # two utterances of ~2.8 s speech
        assert sum(float(r[f"share_{e}"]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
        starts = [s for c, _, _, s in PLAN if c == int(ch)]
        assert starts[0] < float(r["negative_start"]) < float(r["negative_end"]) <= starts[1] + 3.8


def test_mix_labels_one_channel(archive, predictor, tmp_path):
    run([archive / "a.wav"], predictor, tmp_path / "labels.csv", mix=True)
    rows = read_csv(tmp_path / "labels.csv")
    assert {r["channel"] for r in rows} == {"mix"}
    for _, emotion, _, start in PLAN:
        assert any(float(r["start"]) < start + 3.5 and float(r["end"]) > start for r in rows)


def test_window_and_hop_options(archive, predictor, tmp_path):
    from serfast.calls.channel import WindowOptions

    run([archive / "a.wav"], predictor, tmp_path / "labels.csv",
        windows=WindowOptions(window=1.0, hop=0.25))
    rows = [r for r in read_csv(tmp_path / "labels.csv") if r["channel"] == "0"]
    starts = sorted(float(r["start"]) for r in rows)
    assert all(float(r["end"]) - float(r["start"]) == pytest.approx(1.0, abs=1e-3) for r in rows)
    grid = predictor.spec.hop_length / predictor.spec.sr  # windows start on the frame grid
    assert all(s / grid == pytest.approx(round(s / grid), abs=0.05) for s in starts)
    assert np.median(np.diff(starts)) == pytest.approx(0.25, abs=grid / 2)  # the hop
    assert len(rows) >= 2 * 8


def test_resume_skips_finished_files_and_matches_a_full_run(archive, predictor, tmp_path):
    full = tmp_path / "full" / "labels.csv"
    full.parent.mkdir()
    run([archive], predictor, full, segments=str(full.parent / "segments.csv"))
    out = tmp_path / "resumed" / "labels.csv"
    out.parent.mkdir()

    class Interrupt(Exception):
        pass

    def stop_after_first_file(done, total, files, failed):
        if files >= 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        predict_archive([str(archive)], predictor, str(out),
                        PredictOptions(workers=1, summary=str(out.parent / "summary.csv")),
                        stop_after_first_file)
    assert not out.exists() and os.path.exists(str(out) + ".journal")
    with open(str(out) + ".partial", "a") as fh:
        fh.write("half a row,")  # torn write after the last journaled file
    predictor.calls.clear()
    rep = run([archive], predictor, out, resume=True, segments=str(out.parent / "segments.csv"))
    assert rep.skipped == 1 and rep.files == 2 and len(predictor.calls) == 2
    for name in ("labels.csv", "summary.csv", "segments.csv"):
        assert (out.parent / name).read_text() == (full.parent / name).read_text()
    assert not os.path.exists(str(out) + ".journal")


def test_existing_output_is_refused(archive, predictor, tmp_path):
    from serfast.calls.labels import OutputError

    out = tmp_path / "labels.csv"
    run([archive / "a.wav"], predictor, out)
    with pytest.raises(OutputError, match="exists"):
        run([archive / "a.wav"], predictor, out)
    with pytest.raises(OutputError, match="nothing to resume"):
        run([archive / "a.wav"], predictor, out, resume=True)


def test_a_missing_output_folder_is_refused_before_any_file_is_labelled(archive, predictor,
                                                                         tmp_path):
    from serfast.calls.labels import OutputError

    predictor.calls.clear()
    missing = tmp_path / "no_such_folder"
    for out, kw in [(missing / "labels.csv", {}),
                    (tmp_path / "labels.csv", {"segments": str(missing / "s.csv")})]:
        with pytest.raises(OutputError, match=f"folder {missing} does not exist"):
            run([archive / "a.wav"], predictor, out, **kw)
    assert predictor.calls == [] and not missing.exists()
    assert not (tmp_path / "labels.csv").exists()


def test_denoising_brings_window_features_back_towards_the_clean_call(predictor):
    """Under steady line noise, the windows' features of the denoised channel (the
    default) lie closer to those of the same call without noise than the raw channel's."""
    from serfast.calls.denoise import DenoiseOptions, NoiseReducer

    sr, spec = 22050, predictor.spec
    clean = call(PLAN, 24.0, noise=0.0)[:, 0]
    noisy = call(PLAN, 24.0, noise=0.02)[:, 0]
    reducer = NoiseReducer(SR, DenoiseOptions())
    denoised = np.concatenate([reducer.push(noisy), reducer.finish()])
    spans = [(int((start - 0.2) * sr), int((start + 2.3) * sr))
             for c, _, _, start in PLAN if c == 0]

    def z(y):
        y = resample(y, SR, sr)
        values = compute_batch([y[a:b] for a, b in spans], spec).values
        return (values - predictor.mean) / predictor.std

    far = np.abs(z(noisy) - z(clean)).mean()
    assert np.abs(z(denoised) - z(clean)).mean() < 0.6 * far  # measured: 0.44


def test_resume_refuses_other_denoise_settings(archive, predictor, tmp_path):
    from serfast.calls.channel import WindowOptions
    from serfast.calls.labels import OutputError

    out = tmp_path / "labels.csv"

    def stop(done, total, files, failed):
        if files >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_archive([str(archive)], predictor, str(out), PredictOptions(workers=1), stop)
    with pytest.raises(OutputError, match="options changed"):
        run([archive], predictor, out, resume=True, windows=WindowOptions(denoise=None))


# ------------------------------------------------------------------ summary, segments

def test_summarize_shares_dominant_and_most_negative_stretch():
    from serfast.calls.summary import summarize

    labels = ["neutral", "happy", "angry"]
    one = lambda k: np.eye(3)[k]  # noqa: E731
    starts = np.array([0.0, 2.0, 10.0, 12.0, 14.0])
    ends = starts + 2.0
    probs = np.array([one(0), one(0), one(2), one(2), one(1)])
    regions = [(0.0, 4.0), (10.0, 16.0)]
    s = summarize(starts, ends, probs, regions, labels, seconds=30.0)
    assert s.speech_seconds == pytest.approx(10.0) and s.windows == 5
    assert s.shares == pytest.approx({"neutral": 0.4, "happy": 0.2, "angry": 0.4}, abs=0.01)
    assert s.dominant in ("neutral", "angry")
    assert (s.negative_start, s.negative_end) == pytest.approx((10.0, 14.0))
    assert s.negative_score == pytest.approx(1.0)
    calm = summarize(starts[:2], ends[:2], probs[:2], regions[:1], labels, 30.0)
    assert calm.negative_start is None and calm.dominant == "neutral"
    empty = summarize(np.zeros(0), np.zeros(0), np.zeros((0, 3)), [], labels, 30.0)
    assert empty.dominant == "" and empty.speech_seconds == 0 and empty.negative_start is None


def test_segments_merge_adjacent_windows_with_the_same_label():
    from serfast.calls.summary import merge_segments

    rows = [dict(start=s, end=s + 2.5, label=lab, confidence=c, p_a=c, p_b=1 - c)
            for s, lab, c in [(0.0, "a", 0.9), (1.25, "a", 0.7), (2.5, "b", 0.2),
                              (3.75, "a", 0.6), (20.0, "a", 0.8)]]
    segs = merge_segments(rows, ["p_a", "p_b"])
    assert [(s["start"], s["end"], s["label"], s["windows"]) for s in segs] == [
        (0.0, 3.75, "a", 2), (2.5, 5.0, "b", 1), (3.75, 6.25, "a", 1), (20.0, 22.5, "a", 1)]
    assert segs[0]["confidence"] == pytest.approx(0.8) and segs[0]["p_b"] == pytest.approx(0.2)


# ------------------------------------------------------------------ memory

def test_long_channel_keeps_a_bounded_buffer(predictor):
    """An hour-long channel streams through in blocks: the audio kept never exceeds a
    few blocks, even inside a 5-minute stretch of continuous speech."""
    from serfast.calls.channel import WindowOptions, _Labeller

    sr, block = 22050, 30.0
    state = _Labeller(predictor, WindowOptions(block_seconds=block, batch=16, group=40))
    talk = np.concatenate([synth_clip(e, 1, k, sr, 3.5)[:3 * sr]  # no pause > 0.4 s
                           for k, e in enumerate(["angry", "sad"] * 50)])
    rng = np.random.default_rng(0)
    kept, n_blocks = 0, 0
    for i in range(120):  # 120 blocks of 30 s
        y = 0.001 * rng.standard_normal(int(block * sr)).astype(np.float32)
        if 20 <= i < 30:
            y += talk[(i - 20) * len(y):(i - 19) * len(y)]
        state.push(y)
        kept = max(kept, len(state.audio) + sum(len(a) for _, a in state.pending))
        n_blocks += 1
    res = state.finish()
    assert kept / sr < 3 * block
    assert res.seconds == pytest.approx(3600.0)
    assert len(res.regions) == 1 and res.regions[0][1] - res.regions[0][0] > 290
    assert len(res.starts) > 230  # every 1.25 s over the five minutes
    # scored in runs of 40 to 79 windows, each run one speaker group
    assert len(predictor.calls) >= 3 and all(40 <= n < 80 for n in predictor.calls[-3:])


def _labelled_rows(model, y: np.ndarray, block: float):
    """Stream ``y`` (22,050 Hz) through a channel labeller in blocks of ``block`` seconds:
    the labeller (its spans and regions) and the rows its model scored, in span order."""
    from serfast.calls.channel import WindowOptions, _Labeller

    sr = model.spec.sr
    state = _Labeller(model, WindowOptions(block_seconds=3.0, batch=3))
    for i in range(0, len(y), int(block * sr)):
        state.push(y[i:i + int(block * sr)])
    seen = []
    state.predictor = type("Recorder", (), dict(
        labels=model.labels, spec=model.spec, needs_frames=False,
        predict_proba=lambda self, v, f, g: seen.append(v) or model.predict_proba(v, f, g)))()
    state.finish()
    return state, np.concatenate(seen)[:, :-1]


def test_windows_are_cut_from_the_right_audio(predictor):
    """Streaming in small blocks gives the features of the same windows cut from the
    whole signal (up to float rounding)."""
    y = resample(call(PLAN + [(0, "happy", 2, 21.0)], 40.0)[:, 0], SR, 22050)
    state, rows = _labelled_rows(predictor, y, 2.3)
    assert len(state.spans) >= 6
    direct = compute_batch([y[a:b] for a, b in state.spans], predictor.spec).values
    # frames shared by windows are summed in another order: equal up to float rounding
    error = np.abs(rows - direct).max(axis=0)
    assert np.all(error <= 1e-5 * np.abs(direct).max(axis=0))


def test_a_window_embeds_the_speech_it_was_placed_over():
    """With the speaker embedding, the windows of a short utterance share the encoder's
    columns of the utterance's centre 1.6 s (a corpus clip's centre); windows inside a
    longer region get their own centre's, as per window; however the channel streams.
    The other columns are the per-window computation's."""
    from dataclasses import replace

    from serfast.features.voice_encoder import centre_piece, clip_embeddings, piece_embeddings

    sr = 22050
    spec = replace(FeatureSpec(), embedding=True)
    model = fit_predictor(spec)
    y = 0.002 * np.random.default_rng(5).standard_normal(24 * sr).astype(np.float32)
    for emotion, speaker, start, seconds in [("angry", 1, 2.0, 1.2), ("sad", 2, 8.0, 1.8),
                                              ("happy", 3, 14.0, 6.0)]:
        clip = synth_clip(emotion, speaker, 1, sr, seconds)
        y[int(start * sr):int(start * sr) + len(clip)] += clip
    state, rows = _labelled_rows(model, y, 2.3)
    at = spec.slices["embedding"]
    short = [(a, b) for a, b in state.regions if b - a <= state.win]
    assert len(short) == 2 and len(state.regions) == 3
    for a, b in state.regions:
        mine = [i for i, (s, e) in enumerate(state.spans) if s < b and e > a]
        if (a, b) in short:
            assert len(mine) == 3  # the three lead windows
            want = piece_embeddings([centre_piece(y, a, b, sr)], sr)[0]
        else:
            assert len(mine) >= 4
            want = clip_embeddings([y[s:e] for s, e in (state.spans[i] for i in mine)], sr)
        np.testing.assert_allclose(rows[mine][:, at], np.broadcast_to(want, (len(mine), 512)),
                                   rtol=0, atol=1e-6)
    direct = compute_batch([y[a:b] for a, b in state.spans], replace(spec, embedding=False))
    engine = np.delete(rows, np.arange(at.start, at.stop), axis=1)
    error = np.abs(engine - direct.values).max(axis=0)
    assert np.all(error <= 1e-5 * np.abs(direct.values).max(axis=0))
    again, rows_again = _labelled_rows(model, y, 0.7)  # smaller blocks: older audio dropped
    order = sorted(range(len(again.spans)), key=again.spans.__getitem__)
    assert sorted(state.spans) == [again.spans[i] for i in order]
    by_span = dict(zip(state.spans, rows[:, at]))
    np.testing.assert_allclose(rows_again[order][:, at],
                               np.stack([by_span[again.spans[i]] for i in order]),
                               rtol=0, atol=1e-6)


# ------------------------------------------------------------------ workers and CLI

def test_two_workers_give_the_same_rows(archive, predictor, tmp_path):
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    run([archive], predictor, tmp_path / "w1" / "labels.csv")
    rep = predict_archive([str(archive)], predictor, str(tmp_path / "w2" / "labels.csv"),
                          PredictOptions(workers=2))
    assert rep.workers == 2
    for one, two in (("labels.csv", "labels.csv"), ("summary.csv", "labels.summary.csv")):
        assert (tmp_path / "w1" / one).read_text() == (tmp_path / "w2" / two).read_text()


def test_predict_workers_use_one_thread_per_library(archive, predictor, tmp_path):
    """Like extract's workers, predict's load the feature engine (SciPy's own OpenBLAS
    included) before limiting threads: every library they load has one thread."""
    checking = ThreadCheckingPredictor(predictor.spec, predictor.centroids, predictor.mean,
                                       predictor.std)
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "labels.csv"
        out.parent.mkdir()
        rep = predict_archive([str(archive)], checking, str(out), PredictOptions(workers=workers))
        assert rep.workers == workers and rep.windows > 0
        assert rep.errors == 1  # the broken file only: no channel refused to score


def test_cli_outputs_and_one_line_errors(archive, predictor, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import serfast.calls.predict
    from serfast_cli.main import main

    import serfast.calls.timeline

    monkeypatch.setattr(serfast.calls.predict, "load_model", lambda model: predictor)
    plot, titles = serfast.calls.timeline.plot_timeline, []
    monkeypatch.setattr(serfast.calls.timeline, "plot_timeline",
                        lambda *a: titles.append(a[-1]) or plot(*a))
    listing = tmp_path / "calls.txt"
    listing.write_text("calls/a.wav\n# a comment\ncalls/c_broken.wav\n")
    out = tmp_path / "out" / "labels.csv"
    out.parent.mkdir()
    args = ["predict", str(listing), "--model", str(tmp_path), "--out", str(out),
            "--workers", "1", "--segments", "--plots", str(tmp_path / "png"),
            "--channel-names", "rep, client"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert titles == [("rep", "client")] * 2
    assert "in 3 channels of 2 files" in result.output and "1 failed" in result.output
    assert sorted(os.listdir(out.parent)) == ["labels.csv", "labels.segments.csv",
                                              "labels.summary.csv"]
    assert sorted(os.listdir(tmp_path / "png")) == ["a.png", "c_broken.png"]
    segs = read_csv(out.parent / "labels.segments.csv")
    assert {(s["channel"], s["label"]) for s in segs} == {("0", "angry"), ("1", "sad")}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and again.output.count("\n") == 1 and "exists" in again.output
    missing = CliRunner().invoke(main, ["predict", str(tmp_path / "nope"), "--model",
                                        str(tmp_path), "--out", str(out)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


# ------------------------------------------------------------------ outputs that keep each run's files

def interrupted_run(sources, model, out, **kw):
    """A run into ``out`` (options as :func:`run` gives them) stopped by its progress
    callback after its first file."""
    class Interrupt(Exception):
        pass

    def stop_after_first_file(done, total, files, failed):
        if files >= 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        predict_archive([str(s) for s in sources], model, str(out),
                        PredictOptions(workers=1, summary=str(out.parent / "summary.csv"),
                                       **kw), stop_after_first_file)
    assert os.path.exists(str(out) + ".journal") and not out.exists()


def test_summary_and_segments_are_named_after_out(archive, predictor, tmp_path):
    from serfast.calls.html_report import find_outputs
    from serfast.calls.labels import output_paths

    assert output_paths("res/day1.csv") == ("res/day1.csv", "res/day1.summary.csv",
                                            "res/day1.segments.csv")
    assert output_paths("res/day1").summary == "res/day1.summary.csv"
    for day, source in (("day1", "a.wav"), ("day2", "b.wav")):
        out = tmp_path / f"{day}.csv"
        predict_archive([str(archive / source)], predictor, str(out),
                        PredictOptions(workers=1, segments=output_paths(str(out)).segments))
    assert sorted(os.listdir(tmp_path)) == [
        "calls", "day1.csv", "day1.segments.csv", "day1.summary.csv",
        "day2.csv", "day2.segments.csv", "day2.summary.csv"]
    for day, source in (("day1", "a.wav"), ("day2", "b.wav")):
        assert {r["file"] for r in read_csv(tmp_path / f"{day}.summary.csv")} == \
            {str(archive / source)}
        found = find_outputs(str(tmp_path / f"{day}.csv"))  # the HTML report's reader
        assert found.summary == str(tmp_path / f"{day}.summary.csv")


def test_a_second_run_onto_the_same_output_refuses(archive, predictor, tmp_path):
    from serfast.calls.labels import OutputError
    from serfast.io.files import FileLock

    out = tmp_path / "day1.csv"
    other = FileLock(str(out) + ".lock")  # another run holding the lock (flock: per open file)
    assert other.acquire()
    try:
        with pytest.raises(OutputError, match="another serfast predict is writing"):
            run([archive / "a.wav"], predictor, out)
    finally:
        other.release()
    assert sorted(os.listdir(tmp_path)) == ["calls"]
    summary = FileLock(str(tmp_path / "shared.csv") + ".lock")  # one --summary, two outs
    assert summary.acquire()
    try:
        with pytest.raises(OutputError, match="another serfast predict is writing"):
            predict_archive([str(archive / "a.wav")], predictor, str(out),
                            PredictOptions(workers=1, summary=str(tmp_path / "shared.csv")))
        assert not os.path.exists(str(out) + ".lock")  # its own lock released again
    finally:
        summary.release()
    run([archive / "a.wav"], predictor, out)
    assert not os.path.exists(str(out) + ".lock")  # released when the run ends


def test_plain_rerun_onto_an_interrupted_run_refuses_and_keeps_it(archive, predictor, tmp_path):
    from serfast.calls.labels import OutputError

    out = tmp_path / "labels.csv"
    interrupted_run([archive], predictor, out)
    journal = (tmp_path / "labels.csv.journal").read_text()
    with pytest.raises(OutputError, match="interrupted run: --resume continues it"):
        run([archive], predictor, out)
    assert (tmp_path / "labels.csv.journal").read_text() == journal
    rep = run([archive], predictor, out, resume=True)
    assert rep.skipped == 1 and out.exists()


def test_resume_refuses_a_changed_model_folder_or_archive(archive, predictor, tmp_path,
                                                         monkeypatch):
    """The resumed run must be the same model (its files' bytes, wherever they are) and
    the same list of archive files; otherwise one line, and the interrupted run is kept."""
    import shutil

    import serfast.calls.predict
    from serfast.calls.labels import OutputError
    from serfast.calls.predict import model_fingerprint

    monkeypatch.setattr(serfast.calls.predict, "load_model", lambda model: predictor)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.npz").write_bytes(b"weights one")
    (model / "sub" / "norm.npz").write_bytes(b"norm")
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    assert model_fingerprint(str(model)) == model_fingerprint(str(moved))  # contents, not path
    out = tmp_path / "labels.csv"
    interrupted_run([archive], str(model), out)
    (model / "weights.npz").write_bytes(b"weights two")  # retrained in place
    with pytest.raises(OutputError, match="cannot resume: the model changed since"):
        run([archive], str(model), out, resume=True)
    (model / "weights.npz").write_bytes(b"weights one")
    extra = archive / "d.wav"
    shutil.copy(archive / "a.wav", extra)
    try:
        with pytest.raises(OutputError, match="the archive's list of files changed since"):
            run([archive], str(moved), out, resume=True)
    finally:
        extra.unlink()
    rep = run([archive], str(moved), out, resume=True)  # the same model, moved: resumes
    assert rep.skipped == 1 and rep.files == 2


def test_csv_cells_from_user_input_cannot_be_formulas(archive, predictor, tmp_path):
    """A file named like a formula and a model whose labels start with = + - @ give cells
    a spreadsheet shows as text; the segments, read back from the labels, keep them."""
    import shutil

    from serfast.io.csv_cells import read_cell, safe_cell

    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x", "'"):
        assert safe_cell(text) == "'" + text and read_cell(safe_cell(text)) == text
    assert safe_cell("angry") == "angry" and safe_cell(-1.5) == -1.5
    calls = tmp_path / "in"
    calls.mkdir()
    shutil.copy(archive / "a.wav", calls / "=HYPERLINK(x).wav")
    sly = CentroidPredictor(predictor.spec, predictor.centroids, predictor.mean, predictor.std)
    sly.labels = ["=neutral", "+happy", "-sad", "@angry"]
    out = tmp_path / "labels.csv"
    predict_archive([f"{calls}/=HYPERLINK(x).wav"], sly, str(out),
                    PredictOptions(workers=1, segments=str(tmp_path / "labels.segments.csv")))
    for name in ("labels.csv", "labels.summary.csv", "labels.segments.csv"):
        rows = read_csv(tmp_path / name)
        assert rows and all(not v.startswith(("=", "+", "-", "@")) for r in rows
                            for v in r.values()), name
    labels = {r["label"] for r in read_csv(out)}
    assert labels and labels <= {"'=neutral", "'+happy", "'-sad", "'@angry"}
    segments = read_csv(tmp_path / "labels.segments.csv")
    assert {s["label"] for s in segments} <= labels  # escaped once, not twice


def test_timeline_names_channels_and_labels_its_axes(archive, predictor, tmp_path):
    from serfast.calls.predict import run_task
    from serfast.calls.timeline import timeline_figure

    opts = PredictOptions().windows.sized(predictor.spec)
    results = [run_task(str(archive / "a.wav"), c, predictor, opts) for c in (0, 1)]
    fig = timeline_figure("a.wav", ["0", "1"], results, EMOTIONS)
    assert [ax.get_ylabel() for ax in fig.axes] == ["agent\nprobability",
                                                    "customer\nprobability"]
    assert fig.axes[-1].get_xlabel() == "time (s)"
    named = timeline_figure("a.wav", ["0", "1"], results, EMOTIONS, ("rep", "client"))
    assert [ax.get_ylabel() for ax in named.axes] == ["rep\nprobability", "client\nprobability"]
    mixed = timeline_figure("a.wav", ["mix"], results[:1], EMOTIONS)
    assert mixed.axes[0].get_ylabel() == "mix\nprobability"


def test_a_model_of_the_all_set_labels_calls_with_prosody_windows(tmp_path):
    """A model trained on the ``all`` set gets every window's seed and prosody columns,
    each window computed whole (pYIN needs it); a ``prosody``-only model is refused."""
    from serfast.calls.predict import load_model
    from serfast.model.config import ModelError

    spec = FeatureSpec(name="all")
    seed_part = fit_predictor()
    clips = [resample(telephone(synth_clip(e, 1, 0, 22050, 3.0)), SR, spec.sr)[:int(2.5 * spec.sr)]
             for e in EMOTIONS]
    values = compute_batch(clips, spec).values
    mean, std = values.mean(axis=0), values.std(axis=0) + 1e-6
    z = (values - mean) / std
    model = CentroidPredictor(spec, z, mean, std)
    root = tmp_path / "calls"
    root.mkdir()
    sf.write(str(root / "a.wav"), call(PLAN[:2], 11.0), SR, subtype="ULAW")
    rep = run([root], model, tmp_path / "labels.csv")
    assert (rep.files, rep.channels, rep.errors) == (1, 2, 0)
    rows = [r for r in read_csv(tmp_path / "labels.csv") if r["label"]]
    assert rows and model.calls  # predict_proba asserted the all set's column count
    for ch, emotion, _, start in PLAN[:2]:
        assert any(r["channel"] == str(ch) and float(r["start"]) < start + 3.5 for r in rows)
    assert load_model(model) is model and load_model(seed_part) is seed_part
    prosody = CentroidPredictor(FeatureSpec(name="prosody"), z, mean, std)
    with pytest.raises(ModelError, match="needs a set with the seed columns"):
        load_model(prosody)


def test_auto_chooses_the_telephone_model_for_8_khz_archives_only(tmp_path):
    from serfast.calls.predict import choose_model, read_headers
    from serfast.io.audio import AudioError

    call, wide = tmp_path / "call.wav", tmp_path / "wide.wav"
    sf.write(str(call), np.zeros((SR, 2), np.float32), SR)
    sf.write(str(wide), np.zeros(16000, np.float32), 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    headers = read_headers([str(call), str(tmp_path / "bad.wav")])
    assert isinstance(headers[str(tmp_path / "bad.wav")], AudioError)
    assert choose_model(headers)[0] == "telephone"  # an unreadable file does not count
    assert choose_model(read_headers([str(call), str(wide)])) == (
        "default", "1 recording is sampled above 8000 Hz")
    assert choose_model(read_headers([str(tmp_path / "bad.wav")]))[0] == "default"


def test_predict_without_a_model_labels_a_call_with_the_shipped_telephone_model(tmp_path):
    from click.testing import CliRunner

    from serfast_cli.main import main

    voice = [resample(synth_clip(e, 1, 0, 22050, 2.0), 22050, SR) for e in ("sad", "angry")]
    call = np.stack([np.concatenate([np.zeros(SR), voice[0], np.zeros(SR)]),
                     np.concatenate([np.zeros(SR), voice[1], np.zeros(SR)])], axis=1)
    sf.write(str(tmp_path / "call.wav"), call, SR)
    out = tmp_path / "labels.csv"
    res = CliRunner().invoke(main, ["predict", str(tmp_path / "call.wav"), "--out", str(out),
                                    "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "model: telephone (every recording is sampled at 8000 Hz or less)" in res.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["channel"] for r in rows} == {"0", "1"}
    assert {r["label"] for r in rows} <= {"neutral", "happy", "sad", "angry", "fearful",
                                          "disgust"}
