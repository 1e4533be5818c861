"""Long whole files (``--duration 0``) are streamed in bounded memory with the same row."""

import numpy as np
import soundfile as sf

from serfast.extract import ExtractOptions, extract
from serfast.features import FeatureSpec, compute_batch
from serfast.features.long_clips import LONG_SECONDS, REFUSE, STREAM, long_route, stream_features
from serfast.io import load_clip
from serfast.io.store import open_store


def _long_file(path, sr=16000, seconds=LONG_SECONDS + 10):
    """A gliding, amplitude-modulated tone in noise with a silent stretch."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * sr)) / sr
    f = 180 + 60 * np.sin(2 * np.pi * 0.05 * t)
    y = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    y += 0.01 * rng.standard_normal(len(t))
    y[int(20 * sr):int(22 * sr)] = 0
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")


def _close(got, want, spec):
    scale = np.maximum(np.abs(want), 1e-6)
    err = np.abs(got - want) / scale
    chroma = spec.slices["chroma"]
    assert err[chroma].max() <= 1e-3
    rest = np.ones(len(want), bool)
    rest[chroma] = False
    assert err[rest].max() <= 1e-4, np.array(spec.columns)[:len(want)][err > 1e-4]


def test_a_long_whole_file_streams_to_the_whole_file_row(tmp_path):
    path = str(tmp_path / "long.wav")
    _long_file(path)
    spec = FeatureSpec(offset=0.0, duration=0.0, embedding=True)
    assert long_route(path, spec) == STREAM and long_route(path, FeatureSpec()) == ""
    want = compute_batch([load_clip(path, spec)], spec).values[0]
    got, n = stream_features(path, spec)
    assert n == len(load_clip(path, spec))
    _close(got, want, spec)
    at = spec.slices["embedding"]  # the centre 1.6 s, gathered from the stream
    np.testing.assert_array_equal(got[at], want[at])


def test_extract_streams_long_whole_files(tmp_path, monkeypatch):
    import serfast.features.long_clips as long_clips
    calls = []
    stream = long_clips.stream_features
    monkeypatch.setattr(long_clips, "stream_features",
                        lambda *a: calls.append(a) or stream(*a))
    path = str(tmp_path / "calls" / "long.wav")
    (tmp_path / "calls").mkdir()
    _long_file(path)
    spec = FeatureSpec(offset=0.0, duration=0.0)
    out = str(tmp_path / "out.npy")
    summary = extract(path, out, ExtractOptions(spec=spec, workers=1))
    assert summary.ok == 1 and len(calls) == 1
    store = open_store(out)
    want = compute_batch([load_clip(path, spec)], spec).values[0]
    _close(store.values[0, :-1], want, spec)


def test_long_whole_files_stream_their_frames_to_the_store(tmp_path):
    path = str(tmp_path / "long.wav")
    _long_file(path)
    spec = FeatureSpec(offset=0.0, duration=0.0)
    out = str(tmp_path / "out.npy")
    summary = extract(path, out, ExtractOptions(spec=spec, workers=1, frames=True))
    assert summary.ok == 1
    store = open_store(out)
    want = compute_batch([load_clip(path, spec)], spec, frames=True)
    got = np.asarray(store.row_frames(0))
    assert got.shape == want.frames[0].shape
    assert np.abs(got - want.frames[0]).max() <= 1e-4 * np.abs(want.frames[0]).max()
    _close(store.values[0, :-1], want.values[0], spec)
    assert not (tmp_path / "out.frames.long").exists()  # the workers' frame files are gone


def test_augmented_copies_of_long_whole_files_are_refused_one_line(tmp_path):
    path = str(tmp_path / "long.wav")
    _long_file(path)
    spec = FeatureSpec(offset=0.0, duration=0.0)
    out = str(tmp_path / "out.npy")
    summary = extract(path, out, ExtractOptions(spec=spec, workers=1, augment=("noise",)))
    assert (summary.ok, summary.errors) == (1, 1)
    import csv
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "error"
    assert "augmented copies of whole files over 60 s" in rows[1]["error"]
    assert "\n" not in rows[1]["error"]


def test_whole_files_too_long_for_the_prosody_sets_are_refused_one_line(tmp_path, monkeypatch):
    import serfast.features.long_clips as long_clips
    monkeypatch.setattr(long_clips, "PROSODY_MAX_SECONDS", 3.0)
    path = str(tmp_path / "long.wav")
    _long_file(path, seconds=4.0)
    short = str(tmp_path / "short.wav")
    _long_file(short, seconds=2.0)
    out = str(tmp_path / "out.npy")
    spec = FeatureSpec(offset=0.0, duration=0.0, name="all")
    summary = extract(str(tmp_path), out, ExtractOptions(spec=spec, workers=1))
    assert (summary.ok, summary.errors) == (1, 1)
    store = open_store(out)
    by_path = {r["path"].rsplit("/", 1)[-1]: r for r in store.rows}
    assert by_path["short.wav"]["status"] == "ok"
    assert by_path["long.wav"]["error"].startswith(
        "not computed: prosody features of whole files over 3 s")
    assert long_route(path, spec) == REFUSE
    assert long_route(path, FeatureSpec(offset=0.0, duration=0.0)) == ""  # seed: 4 s is short
    assert long_route(path, FeatureSpec(name="all")) == ""  # a crop
