"""Decoding matches librosa.load bit for bit, from local paths and fsspec URLs alike;
bad files give one-line AudioErrors."""

import os

import librosa
import numpy as np
import pytest

from serfast.io.audio import AudioError, audio_info, channel_blocks, load_clip, resample
from serfast.features.spec import FeatureSpec

from conftest import speech, write

SPEC = FeatureSpec()


def librosa_load(path, spec=SPEC):
    return librosa.load(path, sr=spec.sr, offset=spec.offset, duration=spec.duration or None)[0]


@pytest.mark.parametrize("name,sr,kw,channels", [
    ("pcm48.wav", 48000, dict(subtype="PCM_16"), 1),
    ("stereo.wav", 44100, dict(subtype="PCM_24"), 2),
    ("eight.wav", 16000, dict(subtype="FLOAT"), 8),
    ("ulaw.wav", 8000, dict(subtype="ULAW"), 2),
    ("alaw.wav", 8000, dict(subtype="ALAW"), 1),
    ("clip.flac", 48000, dict(), 1),
    ("clip.ogg", 22050, dict(), 1),
    ("Éçà-ünïcode.WAV", 22050, dict(subtype="PCM_16"), 1),
])
def test_load_matches_librosa(tmp_path, name, sr, kw, channels):
    y = speech("happy", 2, sr=sr, seconds=3.5)
    y = np.stack([y * (1 - 0.1 * c) for c in range(channels)], axis=1) if channels > 1 else y
    path = write(tmp_path / name, y, sr, **kw)
    ours = load_clip(path, SPEC)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, librosa_load(path))


@pytest.mark.parametrize("spec", [FeatureSpec(offset=0, duration=0),
                                  FeatureSpec(offset=0.2, duration=1.0, sr=16000)])
def test_crop_options_match_librosa(tmp_path, spec):
    path = write(tmp_path / "a.wav", speech("sad", 1, sr=48000), 48000)
    assert np.array_equal(load_clip(path, spec), librosa_load(path, spec))


def test_clip_shorter_than_crop_is_shorter_like_librosa(tmp_path):
    path = write(tmp_path / "short.wav", speech("sad", 1, sr=48000, seconds=1.5), 48000)
    ours = load_clip(path, SPEC)
    assert len(ours) < SPEC.sr * SPEC.duration
    assert np.array_equal(ours, librosa_load(path))


def _expect_error(path, fragment):
    with pytest.raises(AudioError) as info:
        load_clip(str(path), SPEC)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg


def test_bad_files_raise_one_line_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _expect_error(tmp_path / "empty.wav", "cannot decode")
    (tmp_path / "noise.wav").write_bytes(os.urandom(5000))
    _expect_error(tmp_path / "noise.wav", "cannot decode")
    good = write(tmp_path / "good.wav", speech("sad", 1, sr=16000), 16000, subtype="PCM_16")
    data = open(good, "rb").read()
    (tmp_path / "header.wav").write_bytes(data[:44])
    _expect_error(tmp_path / "header.wav", "no audio after offset 0.6 s (file is 0.000 s long)")
    nan = speech("sad", 1, sr=16000)
    nan[20000] = np.nan
    _expect_error(write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT"), "non-finite")
    inf = speech("sad", 1, sr=16000)
    inf[20000] = np.inf
    _expect_error(write(tmp_path / "inf.wav", inf, 16000, subtype="FLOAT"), "non-finite")
    _expect_error(write(tmp_path / "one.wav", np.ones(1, np.float32) * 0.1, 16000),
                  "no audio after offset")
    os.symlink(tmp_path / "missing.wav", tmp_path / "dangling.wav")
    _expect_error(tmp_path / "dangling.wav", "cannot decode")


def test_truncated_wav_keeps_what_is_there(tmp_path):
    good = write(tmp_path / "good.wav", speech("sad", 1, sr=16000), 16000, subtype="PCM_16")
    data = open(good, "rb").read()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    y = load_clip(str(tmp_path / "cut.wav"), SPEC)  # libsndfile reads what is present
    assert np.isfinite(y).all() and len(y) > 0


# ------------------------------------------------------------------ fsspec URLs

@pytest.fixture
def memory_url(tmp_path):
    """A 3.5 s stereo 44.1 kHz FLAC in fsspec's memory filesystem, and its local copy."""
    fsspec = pytest.importorskip("fsspec")
    y = speech("angry", 3, sr=44100, seconds=3.5)
    local = write(tmp_path / "call.flac", np.stack([y, 0.5 * y], axis=1), 44100)
    url = f"memory://serfast-test/{tmp_path.name}/call.flac"
    with fsspec.open(url, "wb") as fh, open(local, "rb") as src:
        fh.write(src.read())
    yield url, local
    fsspec.filesystem("memory").rm(url)


def test_urls_decode_like_local_files(memory_url):
    url, local = memory_url
    assert audio_info(url) == audio_info(local) == (44100, int(3.5 * 44100), 2)
    assert np.array_equal(load_clip(url, SPEC), load_clip(local, SPEC))
    for channel in (0, 1, None):
        streamed = list(channel_blocks(url, channel, 22050, block_seconds=0.6))
        assert len(streamed) == 6
        assert np.array_equal(np.concatenate(streamed),
                              np.concatenate(list(channel_blocks(local, channel, 22050))))


def test_missing_url_is_a_one_line_error():
    pytest.importorskip("fsspec")
    url = "memory://serfast-test/no-such-file.wav"
    for read in (audio_info, lambda u: load_clip(u, SPEC),
                 lambda u: next(channel_blocks(u, None, 22050))):
        with pytest.raises(AudioError) as info:
            read(url)
        assert str(info.value).startswith("cannot decode") and "\n" not in str(info.value)


def test_a_url_of_a_protocol_not_allowed_is_never_opened(memory_url, monkeypatch):
    """Only local files and object stores by default: an http(s), ftp or sftp URL (which a
    worker would fetch from anywhere) is refused before fsspec sees it."""
    opened = []
    monkeypatch.setattr("fsspec.open", lambda *a, **k: opened.append(a))
    for url in ("http://example.com/a.wav", "ftp://host/a.wav", "sftp://host/a.wav",
                "simplecache::http://example.com/a.wav"):
        for read in (audio_info, lambda u: load_clip(u, SPEC),
                     lambda u: next(channel_blocks(u, None, 22050))):
            with pytest.raises(AudioError, match=r"cannot open: protocol '(http|ftp|sftp|"
                                                 r"simplecache)' is not allowed") as info:
                read(url)
            assert "\n" not in str(info.value) and "SERFAST_URL_PROTOCOLS" in str(info.value)
    assert opened == []
    monkeypatch.undo()
    monkeypatch.setenv("SERFAST_URL_PROTOCOLS", "http")
    with pytest.raises(AudioError, match="cannot decode"):  # allowed: tried (no network)
        audio_info("http://127.0.0.1:9/a.wav")
    monkeypatch.setenv("SERFAST_URL_PROTOCOLS", "")
    url, local = memory_url  # memory:// (and file://, s3://, gs://, az://) by default
    assert audio_info(url) == audio_info(local)


def test_block_filter_sees_the_file_rate_before_resampling(tmp_path):
    """channel_blocks hands the decoded channel at its own rate to the block filter."""
    y = speech("sad", 1, sr=16000, seconds=2.0)
    path = write(tmp_path / "a.wav", y, 16000, subtype="FLOAT")

    class Halve:
        rates: list[int] = []

        def __init__(self, sr):
            self.rates.append(sr)
            self.held = np.zeros(0, np.float32)

        def push(self, block):  # hands back the previous block, halved
            out, self.held = self.held, 0.5 * block
            return out

        def finish(self):
            return self.held

    blocks = list(channel_blocks(path, None, 22050, block_seconds=0.3, block_filter=Halve))
    assert Halve.rates == [16000]
    np.testing.assert_array_equal(np.concatenate(blocks), resample(0.5 * y, 16000, 22050))
