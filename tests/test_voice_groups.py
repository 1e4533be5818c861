"""Voices of channels and their clusters (predict --speakers voice)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serfast.calls import voice_groups
from serfast.calls.voice_groups import channel_voice, check_channels, voice_clusters
from serfast.demo import synth_clip
from serfast.features.spec import FeatureSpec


def test_clusters_are_the_voices_numbered_by_first_appearance():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 256))
    truth = np.array([2, 2, 0, 1, 0, 2, 1, 1, 0])
    x = centres[truth] + 0.3 * rng.normal(0, 1, (len(truth), 256))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert voice_clusters(x).tolist() == [0, 0, 1, 2, 1, 0, 2, 2, 1]
    assert voice_clusters(x[:1]).tolist() == [0] and voice_clusters(x[:0]).tolist() == []
    with pytest.raises(ValueError, match="at most 5,000 channels at once .got 5,001."):
        check_channels(5001)


def test_a_channel_voice_is_a_unit_vector_of_its_first_regions(tmp_path, monkeypatch):
    sr = 22050
    gap = np.zeros(sr, np.float32)
    y = np.concatenate([part for k in range(4) for part in (gap, synth_clip("neutral", 1, k,
                                                                             sr, 1.5))])
    path = str(tmp_path / "speech.wav")
    sf.write(path, np.concatenate([y, gap]), sr, subtype="FLOAT")
    seen = []
    embed = voice_groups.embed_pieces
    monkeypatch.setattr(voice_groups, "embed_pieces",
                        lambda pieces, rate: seen.append(len(pieces)) or embed(pieces, rate))
    voice = channel_voice(path, 0, FeatureSpec())
    assert voice.shape == (256,) and np.linalg.norm(voice) == pytest.approx(1.0, abs=1e-5)
    assert seen == [4]  # one piece per speech region
    monkeypatch.setattr(voice_groups, "MAX_REGIONS", 2)
    channel_voice(path, 0, FeatureSpec())
    assert seen[-1] == 2  # decoding stops after the first two regions
    silent = str(tmp_path / "silent.wav")
    sf.write(silent, np.zeros(3 * sr, np.float32), sr)
    assert channel_voice(silent, 0, FeatureSpec()) is None
