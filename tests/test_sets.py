"""The named feature sets: layout, seed unchanged, prosody from every backend, the store's
record of the set, frames on the seed's grid, and the model's refusal of another set."""

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from serfast.features import gpu
from serfast.features.cpu import compute_batch
from serfast.features.pitch import PITCH_COLUMNS, pitch_row, pitch_track
from serfast.features.spec import (EMBEDDING_SIZE, FEATURE_SETS, PROSODY_FRAME_COLUMNS,
                                   STORE_SPEC, FeatureSpec)
from serfast.features.voice import VOICE_COLUMNS, pitch_voice_row
from serfast.features.voice_encoder import piece_embeddings
from serfast.io.store import open_store

from conftest import rng_signal, speech

SEED, PROSODY, ALL = (FeatureSpec(name=n) for n in FEATURE_SETS)
ALL_EMBEDDED = replace(ALL, embedding=True)


def clips():
    return [speech("happy", 3), speech("sad", 1, seconds=1.2), rng_signal(5000, 4),
            rng_signal(1, 5), np.zeros(3000, np.float32)]


def test_layout_of_the_sets():
    assert len(SEED.columns) == 169 and SEED.columns[-1] == "gender"
    assert ALL.columns == SEED.columns[:-1] + PROSODY.columns
    assert PROSODY.columns[PROSODY.slices["pitch"]] == PITCH_COLUMNS
    assert PROSODY.columns[PROSODY.slices["voice"]] == VOICE_COLUMNS
    assert len(set(ALL.columns)) == len(ALL.columns)
    for spec in (SEED, PROSODY, ALL):
        at = spec.slices
        assert at["values"].stop == spec.n_features == at["gender"].start
    assert "acoustic" not in PROSODY.slices and ALL.slices["seed"] == SEED.slices["values"]
    assert ALL.frame_columns == SEED.frame_columns + list(PROSODY_FRAME_COLUMNS)
    assert FeatureSpec.from_dict(ALL.to_dict()) == ALL
    with pytest.raises(ValueError, match="unknown feature set"):
        FeatureSpec(name="egemaps")


def test_all_is_seed_then_prosody_and_seed_is_unchanged():
    signals = clips()
    seed, prosody, both = (compute_batch(signals, s, frames=True) for s in (SEED, PROSODY, ALL))
    assert np.array_equal(both.values[:, :SEED.n_features], seed.values)
    assert np.array_equal(both.values[:, SEED.n_features:], prosody.values)
    n = len(SEED.frame_columns)
    for s, a in zip(seed.frames, both.frames):
        assert np.array_equal(a[:, :n], s) and a.shape[1] == n + 3
    at = PROSODY.slices
    for y, row in zip(signals, prosody.values):
        assert np.array_equal(row[at["pitch"].start:at["voice"].stop], pitch_voice_row(y, 22050))
        assert np.array_equal(row[at["pitch"]], pitch_row(y, 22050))


def test_the_embedding_follows_the_set_and_precedes_gender():
    names = ([f"embedding_{i:03d}" for i in range(256)]
             + [f"encoder_layer2_{i:03d}" for i in range(256)])
    assert EMBEDDING_SIZE == 512
    assert ALL_EMBEDDED.columns == ALL.columns[:-1] + names + ["gender"]
    assert ALL_EMBEDDED.slices["embedding"] == slice(ALL.n_features, ALL_EMBEDDED.n_features)
    assert ALL_EMBEDDED.slices["values"].stop == ALL.n_features + EMBEDDING_SIZE
    assert ALL_EMBEDDED.seed == SEED and ALL_EMBEDDED.frame_columns == ALL.frame_columns
    assert STORE_SPEC.embedding and STORE_SPEC.name == "all"
    before = ALL.to_dict()
    del before["embedding"]  # a store's JSON from before the embedding existed
    assert FeatureSpec.from_dict(before) == ALL
    assert FeatureSpec.from_dict(ALL_EMBEDDED.to_dict()) == ALL_EMBEDDED


def test_the_embedding_is_the_encoders_of_each_clips_centre_alone_or_in_a_batch():
    signals = clips()
    batch = compute_batch(signals, ALL_EMBEDDED).values
    assert np.array_equal(batch[:, :ALL.n_features], compute_batch(signals, ALL).values)
    at, half = ALL_EMBEDDED.slices["embedding"], 17640  # 0.8 s at 22,050 Hz
    for y, row in zip(signals, batch):
        alone = compute_batch([y], replace(SEED, embedding=True)).values[0]
        np.testing.assert_array_equal(row[at], alone[SEED.n_features:])
        centre = y[max(0, len(y) // 2 - half):len(y) // 2 + half]
        np.testing.assert_array_equal(row[at], piece_embeddings([centre], 22050)[0])
        assert np.isfinite(row).all() and abs(np.linalg.norm(row[at][:256]) - 1) < 1e-5


def test_frames_carry_pitch_on_the_seed_grid():
    y = speech("angry", 2)
    frames = compute_batch([y], PROSODY, frames=True).frames[0]
    f0, voiced, prob = pitch_track(y, 22050)
    assert len(frames) == 1 + len(y) // 512 and len(f0) == 1 + len(y) // 256
    n = len(SEED.frame_columns)
    assert np.array_equal(frames[:, n], np.where(voiced, f0, 0)[::2][:len(frames)].astype(np.float32))
    assert np.array_equal(frames[:, n + 1], prob[::2][:len(frames)].astype(np.float32))
    import librosa

    rms_db = librosa.amplitude_to_db(librosa.feature.rms(y=y)[0])
    assert np.abs(frames[:, n + 2] - rms_db).max() < 1e-3 * np.abs(rms_db).max()


def gpu_errors(fused):
    """Largest CPU-vs-GPU-backend difference of every set with prosody (``all`` with the
    speaker embedding): values relative to the column scale, frames absolute. NumPy stands
    in for CuPy."""
    signals = clips()
    out = []
    for spec in (PROSODY, ALL_EMBEDDED):
        cpu = compute_batch(signals, spec, frames=True)
        dev = gpu.compute_batch_xp(signals, spec, frames=True, xp=np, fused=fused)
        scale = np.maximum(np.abs(cpu.values).max(axis=0), 1e-6)
        assert all(a.shape == b.shape for a, b in zip(cpu.frames, dev.frames))
        out += [float((np.abs(cpu.values - dev.values) / scale).max()),
                max(float(np.abs(a - b).max()) for a, b in zip(cpu.frames, dev.frames))]
    return out


def test_gpu_backend_matches_cpu_for_every_set():
    values_prosody, frames_prosody, values_all, frames_all = gpu_errors(fused=False)
    assert max(values_prosody, values_all) < 1e-4 and max(frames_prosody, frames_all) < 1e-3


def test_gpu_backend_with_cuda_kernels_on_the_simulator_matches_cpu():
    from test_gpu import simulated

    script = "import json, test_sets; print(json.dumps(test_sets.gpu_errors(fused=True)))"
    values_prosody, frames_prosody, values_all, frames_all = simulated(script)
    assert max(values_prosody, values_all) < 1e-4 and max(frames_prosody, frames_all) < 1e-3


def test_extract_records_the_set_and_the_model_refuses_another(good_corpus, tmp_path):
    from serfast_cli.main import main

    runner = CliRunner()
    out = str(tmp_path / "all.npy")
    res = runner.invoke(main, ["extract", str(good_corpus), out, "--features", "all",
                               "--frames", "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    store = open_store(out)
    assert store.spec == FeatureSpec(name="all", sr=22050, offset=0.0, duration=0.0,
                                     embedding=True)
    assert store.columns == ALL_EMBEDDED.columns
    assert store.values.shape == (6, len(ALL_EMBEDDED.columns))
    assert store.row_frames(0).shape[1] == len(ALL.frame_columns)
    meta = json.load(open(tmp_path / "all.json"))
    assert meta["spec"]["name"] == "all" and meta["frames"]["columns"] == ALL.frame_columns
    res = runner.invoke(main, ["extract", str(good_corpus), str(tmp_path / "x.npy"),
                               "--features", "egemaps"])
    assert res.exit_code != 0 and "egemaps" in res.output


def test_evaluate_refuses_a_store_of_another_set(trained_model, good_corpus, tmp_path):
    from serfast.extract import ExtractOptions, extract
    from serfast.model.train import TrainError, evaluate

    out = str(tmp_path / "prosody.npy")
    extract(str(good_corpus), out, ExtractOptions(spec=PROSODY, frames=True, workers=1))
    with pytest.raises(TrainError, match="another feature spec than the model's: "
                                         "re-extract with --features seed$") as err:
        evaluate(trained_model, [out])
    assert "\n" not in str(err.value)


def test_extract_embeds_a_shard_at_once_and_a_failed_batch_clip_by_clip(monkeypatch):
    from serfast import extract as X

    real, calls = X.clip_embeddings, []

    def flaky(signals, sr):
        calls.append(len(signals))
        if len(signals) > 1 or np.all(signals[0] == np.float32(0.95)):
            raise RuntimeError("encoder broke")
        return real(signals, sr)

    signals = [(0, speech("happy", 3)), (1, np.full(5000, 0.95, np.float32)),
               (2, speech("sad", 1))]
    rows = X.feature_rows(signals, ALL_EMBEDDED, frames=False)
    assert [r.error for r in rows] == [""] * 3
    monkeypatch.setattr(X, "clip_embeddings", flaky)
    retried = X.feature_rows(signals, ALL_EMBEDDED, frames=False)
    assert calls == [3, 1, 1, 1]
    assert retried[1].error == "feature error: RuntimeError: encoder broke"
    for i in (0, 2):
        np.testing.assert_array_equal(retried[i].values, rows[i].values)
        np.testing.assert_array_equal(
            rows[i].values, compute_batch([signals[i][1]], ALL_EMBEDDED).values[0])
