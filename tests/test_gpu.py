"""The GPU backend: its array code with NumPy standing in for CuPy, its CUDA kernel on
Numba's simulator, device selection, and parity on a real GPU when there is one."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from serfast.features import device, gpu_transfer
from serfast.features import gpu as kernels_gpu
from serfast.io.audio import load_clip
from serfast.extract import ExtractOptions, extract
from serfast.features.cpu import compute_batch
from serfast.features.gpu import compute_batch_xp
from serfast.features.spec import FeatureSpec
from serfast.io.store import open_store

from conftest import rng_signal, speech, write

SPEC = FeatureSpec()
COLS = SPEC.columns[:-1]
CHROMA = np.array([c.startswith("chroma_") for c in COLS])
CLIP = int(SPEC.duration * SPEC.sr)  # a decoded 2.5-s clip


def synthetic_clips():
    """Speech of every pitch range at the cropped length and others, plus noise."""
    return [speech("angry", 1, seconds=2.5), speech("sad", 2, seconds=2.5),
            speech("happy", 3, 1, seconds=2.5), speech("fearful", 4, seconds=3.5),
            speech("neutral", 5, seconds=1.3), speech("disgust", 6, 2, seconds=2.5),
            rng_signal(30000, 1), rng_signal(3000, 2)]


def assert_close_columns(got, want, chroma_tol=1e-3):
    """Every column of ``got`` within 1e-4 of its scale in ``want`` (chroma
    ``chroma_tol``)."""
    scale = np.maximum(np.abs(want).max(axis=0), 1e-12)
    err = (np.abs(np.asarray(got, np.float64) - want) / scale).max(axis=0)
    bad = [(c, e) for c, e, is_c in zip(COLS, err, CHROMA) if e > (chroma_tol if is_c else 1e-4)]
    assert not bad, f"columns off the CPU engine: {bad}"


def assert_matches_cpu(signals, got, chroma_tol=1e-3):
    """Every column within 1e-4 of its scale (chroma ``chroma_tol``) of the CPU engine;
    frames too."""
    want = compute_batch(signals, SPEC, frames=got.frames is not None)
    assert_close_columns(got.values, want.values, chroma_tol)
    if got.frames is not None:
        assert [f.shape for f in got.frames] == [f.shape for f in want.frames]
        assert_close_frames(np.concatenate(got.frames), np.concatenate(want.frames))


def assert_close_frames(got, want):
    """Frame-level log-mel (dB) and MFCC: every column within 1e-4 of its scale."""
    scale = np.maximum(np.abs(want).max(axis=0), 1e-12)
    assert (np.abs(got - want).max(axis=0) / scale).max() < 1e-4


def test_numpy_standin_matches_cpu_engine_on_synthetic_speech():
    signals = synthetic_clips()
    got = compute_batch_xp(signals, SPEC, frames=True, xp=np)
    assert got.values.shape == (len(signals), len(COLS)) and got.values.dtype == np.float32
    assert_matches_cpu(signals, got)


def test_numpy_standin_matches_cpu_engine_on_real_speech(ravdess_files):
    signals = [load_clip(f, SPEC) for f in ravdess_files]
    assert_matches_cpu(signals, compute_batch_xp(signals, SPEC, frames=True, xp=np))


def odd_lengths():
    """Lengths around frame boundaries, two sharing a frame count, and a silent clip."""
    clips = [rng_signal(n, n) for n in (1, 2, 511, 512, 513, 2047, 2048, 2049, 5000)]
    clips += [speech("angry", 2, seconds=2.5), speech("happy", 1, seconds=2.5)[:CLIP - 100],
              np.zeros(20000, np.float32)]
    return clips


def test_mixed_lengths_in_buckets_give_the_rows_of_one_by_one():
    signals = odd_lengths()
    together = compute_batch_xp(signals, SPEC, frames=True, xp=np)
    alone = [compute_batch_xp([s], SPEC, frames=True, xp=np) for s in signals]
    scale = np.maximum(np.abs(together.values).max(axis=0), 1e-12)
    one_by_one = np.stack([a.values[0] for a in alone])
    assert (np.abs(together.values - one_by_one) <= 1e-6 * scale).all()
    for f, a in zip(together.frames, alone):
        assert np.allclose(f, a.frames[0], atol=1e-4)
    assert np.isfinite(together.values).all()


def test_mixed_lengths_match_the_cpu_engine():
    signals = odd_lengths()
    # skew and kurtosis of one or two samples are rounding noise: compare the rest there
    got = compute_batch_xp(signals, SPEC, xp=np)
    moments = [COLS.index("wave_skew"), COLS.index("wave_kurtosis")]
    got.values[:2, moments] = compute_batch(signals[:2], SPEC).values[:, moments]
    assert_matches_cpu(signals, got)


def test_chunks_of_a_bucket_give_the_same_rows():
    signals = [speech("sad", k, seconds=2.5) for k in range(1, 6)]
    whole = compute_batch_xp(signals, SPEC, xp=np)
    cut = compute_batch_xp(signals, SPEC, xp=np, max_frames=250)  # two clips per chunk
    scale = np.abs(whole.values).max(axis=0) + 1e-12
    assert (np.abs(whole.values - cut.values) <= 1e-6 * scale).all()


def test_pitch_and_voice_from_the_callers_channel_frames():
    """predict's GPU path: a channel's windows take their pitch and voice columns from
    its pitch frames observed once (``pitch_voice``), the rest from the GPU engine, and
    equal the windows computed on their own, per bucket and chunk."""
    from serfast.calls.window_prosody import ChannelProsody

    spec = FeatureSpec(name="all")
    y = speech("angry", 1, seconds=8.0)
    starts = [0, 50 * 512, 51 * 512, 120 * 512, 90 * 512]
    ends = [s + 55125 for s in starts[:-1]] + [90 * 512 + 9000]
    clips = [y[s:e] for s, e in zip(starts, ends)]
    want = compute_batch_xp(clips, spec, frames=True, xp=np, max_frames=250)
    prosody, asked = ChannelProsody(spec), []

    def pitch_voice(rows):
        asked.extend(rows)
        return prosody.pitch_voice(y, 0, [starts[i] for i in rows], [ends[i] for i in rows])

    got = compute_batch_xp(clips, spec, frames=True, xp=np, max_frames=250,
                           pitch_voice=pitch_voice)
    assert sorted(asked) == list(range(len(clips)))
    np.testing.assert_array_equal(got.values, want.values)
    assert all(np.array_equal(a, b) for a, b in zip(got.frames, want.frames))


def test_empty_batch_and_empty_clip():
    assert compute_batch_xp([], SPEC, frames=True, xp=np).values.shape == (0, len(COLS))
    with pytest.raises(ValueError, match="at least one sample"):
        compute_batch_xp([np.zeros(0, np.float32)], SPEC, xp=np)


class _FakeStream(contextlib.nullcontext):
    def __init__(self, non_blocking=False):
        super().__init__()

    def synchronize(self):
        pass


class _FakeDeviceArray(np.ndarray):
    """A host array that fails its upload when its first sample is 99."""

    def set(self, host):
        if host[0, 0] == 99:
            raise RuntimeError("copy failed")
        self[...] = host


FAKE_XP = SimpleNamespace(float32=np.float32, cuda=SimpleNamespace(Stream=_FakeStream),
                          empty=lambda shape, dtype: np.empty(shape, dtype).view(
                              _FakeDeviceArray))


@pytest.fixture
def fake_cupyx(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(empty_pinned=np.empty))


def test_upload_thread_stages_every_chunk_in_order(fake_cupyx):
    signals = [np.full(n, k + 1, np.float32) for k, n in enumerate((5, 3, 700, 650, 9))]
    lengths = np.array([len(s) for s in signals])
    chunks = [np.array([0, 1]), np.array([2, 3]), np.array([4])]
    got = list(gpu_transfer.uploaded(chunks, signals, lengths, FAKE_XP, ahead=1))
    assert [list(c) for c, _ in got] == [[0, 1], [2, 3], [4]]
    for clips, y in got:
        assert y.shape == (len(clips), lengths[clips].max())
        for row, c in enumerate(clips):
            assert (y[row, :lengths[c]] == c + 1).all() and (y[row, lengths[c]:] == 0).all()
    many = [np.full(100, k, np.float32) for k in range(300)]  # staged by several threads
    (clips, y), = gpu_transfer.uploaded([np.arange(300)], many, np.full(300, 100), FAKE_XP,
                                        threads=4)
    assert (y == np.arange(300)[:, None]).all()


def test_upload_thread_raises_its_errors_and_stops_with_the_consumer(fake_cupyx):
    signals = [np.ones(10, np.float32), np.full(10, 99, np.float32)]
    chunks = [np.array([0]), np.array([1])]
    with pytest.raises(RuntimeError, match="copy failed"):
        list(gpu_transfer.uploaded(chunks, signals, np.array([10, 10]), FAKE_XP))
    ones = [np.ones(10, np.float32)] * 50
    stream = gpu_transfer.uploaded([np.array([k]) for k in range(50)], ones,
                                   np.full(50, 10), FAKE_XP, ahead=1)
    next(stream)
    stream.close()  # the thread, blocked on a full queue, must end
    assert not [t for t in threading.enumerate() if t.name == "serfast-upload"]
    bad = np.full(10, 99, np.float32)
    for clips in ([ones[0]] * 2, [ones[0]] * 2 + [bad]):  # it ends, or it fails, next
        stream = gpu_transfer.uploaded([np.array([k]) for k in range(len(clips))], clips,
                                       np.full(len(clips), 10), FAKE_XP, ahead=1)
        closer = threading.Thread(target=lambda s=stream: (next(s), time.sleep(0.2),
                                                           s.close()))
        closer.start()
        closer.join(timeout=10)
        assert not closer.is_alive(), "closing the upload stream hung"


SIMULATED = """
import json
import numpy as np
from numba import config
from conftest import rng_signal, speech, write
from serfast.features import gpu as kernels_gpu
from serfast.features.spec import FeatureSpec

spec = FeatureSpec(n_fft=256, hop_length=64)  # small frames keep the simulator quick
clips = [rng_signal(n, n) for n in (1, 63, 64, 300, 310)] + [np.zeros(200, np.float32)]
lengths = np.array([len(c) for c in clips])
fused = kernels_gpu.compute_batch_xp(clips, spec, xp=np, fused=True).values
plain = kernels_gpu.compute_batch_xp(clips, spec, xp=np, fused=False).values
y = np.zeros((2, 310), np.float32)
y[0], y[1, :300] = clips[4], clips[3]
n = np.array([310, 300])
args = (y, n, 5, spec, np)
zk, rk = kernels_gpu.frame_time_fused(*args)
zx, rx = kernels_gpu.frame_time_xp(*args)
y3 = np.zeros((3, 310), np.float32)
y3[0], y3[1, :300], y3[2, :1] = clips[4], clips[3] + 0.5, 0.25
n3 = np.array([310, 300, 1])
mk, mx = kernels_gpu.moments_fused(y3, n3, np), kernels_gpu.moments_xp(y3, n3, np)
print(json.dumps({"simulator": bool(config.ENABLE_CUDASIM),
    "rows_close": bool(np.allclose(fused, plain, rtol=1e-6, atol=0)),
    "moments_close": bool(np.allclose(mk, mx, rtol=1e-12, atol=1e-15)),
    "moments_constant": mk[2].tolist(),
    "zcr_equal": bool(np.array_equal(zk, zx)), "zcr_sum": float(zk.sum()),
    "rms_close": bool(np.allclose(rk, rx, rtol=1e-12, atol=1e-15)),
    "rms_sum": float(rk.sum())}))
"""


def simulator_env(*paths) -> dict:
    """Environment of a fresh interpreter on Numba's CUDA simulator (the variable must be
    set before numba.cuda is first imported), with ``paths`` first on its import path."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*map(str, paths),
                                                      os.path.dirname(__file__),
                                                      env.get("PYTHONPATH")]))
    return env


def simulated(script, *paths, args=()):
    """JSON printed last by ``script`` (run with ``args``) under :func:`simulator_env`."""
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                         env=simulator_env(*paths), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fused_kernels_on_the_cuda_simulator():
    res = simulated(SIMULATED)
    assert res["simulator"]
    assert res["rows_close"] and res["zcr_equal"] and res["rms_close"]
    assert res["moments_close"] and res["moments_constant"] == [0.25, 0.0, 0.0, 0.0]
    assert res["zcr_sum"] > 0 and res["rms_sum"] > 0


LIGHT_IMPORTS = """
import json, sys
import serfast.features.gpu, serfast.features.device
heavy = ("serfast.features.cpu", "serfast.features.cpu_kernels", "scipy.fft",
         "serfast.io.audio", "soundfile", "soxr", "librosa")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_gpu_backend_and_device_choice_load_neither_cpu_backend_nor_audio():
    assert simulated(LIGHT_IMPORTS) == []


STAND_IN = {
    "cupy/__init__.py": """
import contextlib as _contextlib
import numpy as _np
from types import SimpleNamespace as _NS
def __getattr__(name):
    return getattr(_np, name)
class _DeviceArray(_np.ndarray):
    def set(self, host, stream=None):
        self[...] = host
def empty(shape, dtype):
    return _np.empty(shape, dtype).view(_DeviceArray)
def asnumpy(a):
    return _np.asarray(a)
def get_default_memory_pool():
    return _NS(free_bytes=lambda: 0, free_all_blocks=lambda: None)
class _Stream(_contextlib.nullcontext):
    def __init__(self, non_blocking=False):
        super().__init__()
    def synchronize(self):
        pass
cuda = _NS(Device=lambda: _NS(id=0, synchronize=lambda: None), Stream=_Stream, runtime=_NS(
    getDeviceCount=lambda: 1, memGetInfo=lambda: (20 * 40 * 1024 * 8, 2 ** 32),
    getDeviceProperties=lambda i: {"name": b"Stand-in GPU"}))
""",
    "cupyx/__init__.py": "from numpy import empty as empty_pinned\n",
}

def write_stand_in(folder):
    """The stand-in ``cupy`` and ``cupyx`` packages, in ``folder``."""
    for name, text in STAND_IN.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)


DISPATCHED = """
import json
import numpy as np
from conftest import rng_signal, speech, write
from serfast.features.device import batch_features, describe, resolve_device
from serfast.features.cpu import compute_batch
clips = [speech("angry", 1, seconds=0.4), speech("sad", 2, seconds=0.4), rng_signal(1, 1),
         rng_signal(900, 2)]
got = batch_features(clips, frames=True, device="auto")  # 20-frame chunks: a clip each
want = compute_batch(clips, frames=True)
scale = np.abs(want.values).max(axis=0) + 1e-12
print(json.dumps({"device": resolve_device("auto"), "name": describe("gpu"),
    "host": type(got.values).__name__, "err": float((abs(got.values - want.values)
    / scale).max()), "frames_err": max(float(abs(a - b).max())
    for a, b in zip(got.frames, want.frames))}))
"""


def test_gpu_dispatch_with_numpy_as_cupy_on_the_cuda_simulator(tmp_path):
    """The CuPy branches (pinned staging, memory-sized chunks, the CUDA kernel, copies
    back) under a stand-in ``cupy`` package that is NumPy."""
    write_stand_in(tmp_path)
    res = simulated(DISPATCHED, tmp_path)
    assert res["device"] == "gpu" and res["name"] == "GPU 0 (Stand-in GPU)"
    assert res["host"] == "ndarray"
    assert res["err"] < 1e-4 and res["frames_err"] < 1e-3


EXTRACTED = """
import json, sys
import numpy as np
from serfast.extract import ExtractOptions, extract
from serfast.features.spec import FeatureSpec
from serfast.io.store import open_store
spec = FeatureSpec(n_fft=256, hop_length=64, duration=0.3)  # small: the simulator is slow
corpus, out = sys.argv[1], sys.argv[2]
stores, where = {}, {}
for device in ("cpu", "gpu"):
    where[device] = extract(corpus, f"{out}/{device}.npy",
                            ExtractOptions(spec=spec, workers=2, device=device,
                                           frames=True)).where
    stores[device] = open_store(f"{out}/{device}.npy")
cpu, gpu = stores["cpu"], stores["gpu"]
scale = np.abs(cpu.values).max(axis=0) + 1e-12
capped = extract(corpus, f"{out}/capped.npy", ExtractOptions(spec=spec, workers=8,
                                                             device="gpu")).where
print(json.dumps({"where": where, "capped": capped, "rows": len(gpu.values),
    "paths": [r["path"] for r in cpu.rows] == [r["path"] for r in gpu.rows],
    "err": float((abs(gpu.values - cpu.values) / scale).max()),
    "frames_err": max(float(abs(cpu.row_frames(i) - gpu.row_frames(i)).max())
                      for i in range(len(cpu.values)))}))
"""


def test_extract_on_the_gpu_with_numpy_as_cupy(tmp_path, good_corpus):
    """`serfast extract --device gpu`: two workers share the (stand-in) GPU, each sending
    its decoded shard through it as one batch; the store matches the CPU engine's. A 4-GB
    GPU is shared by at most two processes, however many workers are asked for."""
    write_stand_in(tmp_path)
    res = simulated(EXTRACTED, tmp_path, args=[good_corpus, tmp_path])
    assert res["where"] == {"cpu": "2 CPU worker processes",
                            "gpu": "GPU 0 (Stand-in GPU) shared by 2 CPU worker processes"}
    assert res["capped"] == res["where"]["gpu"]
    assert res["rows"] == 6 and res["paths"]
    assert res["err"] < 1e-4 and res["frames_err"] < 1e-3


PREDICTED = """
import csv, json, os, sys, tempfile
import soundfile as sf
import serfast.calls.window_prosody as window_prosody
import serfast.features.gpu as kernels_gpu
from serfast.calls.predict import PredictOptions, predict_archive
from serfast.features import shape
from serfast.features.spec import FeatureSpec
from test_predict import PLAN, SR, call, fit_predictor
batches, own = [], []
engine, own_pitch = kernels_gpu.compute_batch_xp, shape.pitch_voice
sharing = window_prosody.ChannelProsody
def counted(signals, *args, **kw):
    batches.append(len(signals))
    return engine(signals, *args, **kw)
def counted_own(*args):
    own.append(1)
    return own_pitch(*args)
kernels_gpu.compute_batch_xp, shape.pitch_voice = counted, counted_own
name, _, extra = sys.argv[1].partition("+")
spec = FeatureSpec(name=name, embedding=extra == "embedding")
predictor, tmp = fit_predictor(spec), tempfile.mkdtemp()
wav = os.path.join(tmp, "call.wav")
sf.write(wav, call(PLAN, 24.0), SR, subtype="ULAW")
rows, devices, windows, own_pitches = {}, {}, {}, {}
for run in ("cpu", "gpu", "gpu, each window its own pitch"):
    device = run.split(",")[0]
    window_prosody.ChannelProsody = sharing if run == device else (lambda spec: None)
    batches.clear(), own.clear()
    out = os.path.join(tmp, str(len(rows)), "labels.csv")
    os.makedirs(os.path.dirname(out))
    devices[run] = predict_archive([wav], predictor, out,
                                   PredictOptions(workers=1, device=device)).device
    windows[run], own_pitches[run] = sum(batches), len(own)
    with open(out, newline="") as fh:
        rows[run] = list(csv.DictReader(fh))
cpu, gpu, alone = rows["cpu"], rows["gpu"], rows["gpu, each window its own pitch"]
probs = [k for k in cpu[0] if k.startswith("p_")]
diff = lambda x, y: max(abs(float(a[k]) - float(b[k])) for a, b in zip(x, y) for k in probs)
print(json.dumps({"devices": devices, "engine_windows": windows, "own_pitch": own_pitches,
    "windows": len(cpu), "same_windows": [(r["channel"], r["start"]) for r in cpu]
                    == [(r["channel"], r["start"]) for r in gpu],
    "same_labels": [r["label"] for r in cpu] == [r["label"] for r in gpu],
    "prob_diff": diff(cpu, gpu), "shared_vs_own": diff(gpu, alone)}))
"""


@pytest.mark.parametrize("feature_set", ["seed", "all", "seed+embedding"])
def test_predict_on_the_gpu_with_numpy_as_cupy(tmp_path, feature_set):
    """`serfast predict --device gpu` computes its windows with the GPU engine (CuPy
    stood in for by NumPy, CUDA kernels on the simulator) and labels as on the CPU. With
    prosody, each window's pitch and voice columns come from the channel's pitch frames
    observed once, and give exactly what the window's own pitch gives. With the speaker
    embedding (the `telephone` model's set), the encoder's columns come from the same
    speech on either device.

    The test double scores z-scores of every column, so the engines' differences in the
    prosody set's other columns (within 1e-4 of scale: tests/test_sets.py) move its
    probabilities by a few hundredths; the labels stay."""
    write_stand_in(tmp_path)
    res = simulated(PREDICTED, tmp_path, args=[feature_set])
    gpu, alone = "gpu", "gpu, each window its own pitch"
    assert res["devices"] == {"cpu": "CPU", gpu: "GPU 0 (Stand-in GPU)",
                              alone: "GPU 0 (Stand-in GPU)"}
    n = res["windows"]
    assert n >= 4 and res["engine_windows"] == {"cpu": 0, gpu: n, alone: n}
    prosody = feature_set.startswith("all")
    assert res["own_pitch"] == {"cpu": 0, gpu: 0, alone: n if prosody else 0}
    assert res["same_windows"] and res["same_labels"] and res["shared_vs_own"] == 0.0
    assert res["prob_diff"] < (0.05 if prosody else 1e-3)


def test_gpu_benchmark_runs_with_numpy_as_cupy(tmp_path):
    """bench/bench_gpu.py end to end on a tiny corpus named by a relative path (its first
    run on a GPU lost every end-to-end clip to relative paths in a manifest elsewhere)."""
    write_stand_in(tmp_path)
    for k in range(4):
        write(tmp_path / "corpus" / f"03-01-0{k + 1}-01-01-01-0{k + 1}.wav",
              speech("angry", k + 1, seconds=1.0, sr=22050), 22050)
    bench = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "bench_gpu.py")
    out = subprocess.run([sys.executable, bench, "--corpus", "corpus", "--clips", "2",
                          "--batch", "2", "--cpu-clips", "2", "--passes", "1", "--repeat",
                          "1", "--record", "results.md"], cwd=tmp_path, check=False,
                         env=simulator_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    starts = ["GPU 0 (Stand-in GPU), ", "decoding (soundfile + soxr): ",
              "features alone, GPU: ", "features alone, GPU, clips/s by staging threads: ",
              "one chunk of 2 clips, ", "features alone, CPU engine: ",
              "librosa reference loop, ", "end to end, serfast extract of 4 clips ",
              "end to end, the alternative design: "]
    assert [line[:len(s)] for line, s in zip(lines, starts)] == starts
    assert (tmp_path / "results.md").read_text().count("\n- ") == len(starts)


@pytest.fixture
def no_cupy(monkeypatch):
    """This process as if CuPy were not installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    device.gpu_problem.cache_clear()
    yield
    device.gpu_problem.cache_clear()


def test_auto_falls_back_to_cpu_and_gpu_refuses_in_one_line(no_cupy):
    assert device.resolve_device("auto") == "cpu"
    assert device.resolve_device("cpu") == "cpu"
    with pytest.raises(device.DeviceError) as err:
        device.resolve_device("gpu")
    assert str(err.value) == "--device gpu: no usable CUDA GPU (cupy not installed)"
    with pytest.raises(device.DeviceError, match="choose one of auto, cpu, gpu"):
        device.resolve_device("tpu")


def test_batch_features_dispatches_to_the_cpu_engine(no_cupy):
    signals = [speech("angry", 1, seconds=1.0), rng_signal(700, 4)]
    want = compute_batch(signals, SPEC, frames=True)
    for name in ("auto", "cpu"):
        got = device.batch_features(signals, SPEC, frames=True, device=name)
        assert np.array_equal(got.values, want.values)
        assert all(np.array_equal(a, b) for a, b in zip(got.frames, want.frames))
    with pytest.raises(device.DeviceError):
        device.batch_features(signals, SPEC, device="gpu")
    assert device.describe("cpu") == "CPU"


def test_predict_without_a_gpu_refuses_gpu_in_one_line(no_cupy, tmp_path):
    from click.testing import CliRunner

    from serfast_cli.main import main

    (tmp_path / "model").mkdir()
    res = CliRunner().invoke(main, ["predict", str(tmp_path), "--model", str(tmp_path / "model"),
                                   "--out", str(tmp_path / "labels.csv"), "--device", "gpu"])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: --device gpu: no usable CUDA GPU (cupy not "
                                  "installed)")


@pytest.fixture(scope="module")
def gpu():
    problem = device.gpu_problem()
    if problem is not None:
        pytest.skip(f"needs a CUDA GPU ({problem})")
    import cupy

    return cupy


def test_gpu_matches_cpu_engine_on_synthetic_and_odd_lengths(gpu):
    signals = synthetic_clips() + odd_lengths()[2:]
    assert_matches_cpu(signals, compute_batch_xp(signals, SPEC, frames=True, xp=gpu))
    assert device.resolve_device("auto") == "gpu"
    assert device.describe("gpu").startswith("GPU ")


def test_gpu_matches_cpu_engine_on_real_speech(gpu, ravdess_files):
    signals = [load_clip(f, SPEC) for f in ravdess_files]
    assert_matches_cpu(signals, device.batch_features(signals, SPEC, frames=True,
                                                      device="gpu"), chroma_tol=1e-4)


def test_gpu_extract_matches_cpu_extract_on_real_speech(gpu, ravdess_files, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in ravdess_files:
        (corpus / os.path.basename(f)).symlink_to(f)
    stores = {}
    for name in ("cpu", "gpu"):
        summary = extract(str(corpus), str(tmp_path / f"{name}.npy"),
                          ExtractOptions(workers=2, device=name, frames=True))
        assert summary.ok == len(ravdess_files) and summary.errors == 0
        stores[name] = open_store(str(tmp_path / f"{name}.npy"))
    assert summary.where.startswith("GPU ") and "shared by 2 CPU worker" in summary.where
    cpu, gpu_store = stores["cpu"], stores["gpu"]
    assert [r["path"] for r in cpu.rows] == [r["path"] for r in gpu_store.rows]
    assert_close_columns(gpu_store.values, cpu.values, chroma_tol=1e-4)
    assert_close_frames(gpu_store.frames, cpu.frames)


def test_auto_falls_back_when_the_cuda_kernel_cannot_compile(monkeypatch):
    """A GPU whose Numba-CUDA cannot compile the kernel (a toolkit or version mismatch)
    is not usable: ``auto`` takes the CPU and ``gpu`` says why in one line."""
    fake = SimpleNamespace(float32=np.float32, zeros=lambda n, dtype: np.zeros(n, dtype),
                           cuda=SimpleNamespace(runtime=SimpleNamespace(
                               getDeviceCount=lambda: 1)))

    def broken(xp):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(kernels_gpu, "check_kernels", broken)
    device.gpu_problem.cache_clear()
    try:
        assert device.resolve_device("auto") == "cpu"
        with pytest.raises(device.DeviceError) as err:
            device.resolve_device("gpu")
        assert str(err.value) == ("--device gpu: no usable CUDA GPU (Numba-CUDA kernel error: "
                                  "AttributeError: module 'numpy' has no attribute "
                                  "'row_stack')")
    finally:
        device.gpu_problem.cache_clear()


def test_gpu_processes_take_at_most_a_quarter_of_its_memory(monkeypatch):
    for total, processes in ((80 << 30, 40), (8 << 30, 4), (1 << 30, 1)):
        fake = SimpleNamespace(cuda=SimpleNamespace(runtime=SimpleNamespace(
            memGetInfo=lambda total=total: (total // 2, total))))
        monkeypatch.setitem(sys.modules, "cupy", fake)
        assert device.gpu_processes() == processes


def test_a_failed_gpu_batch_is_computed_on_the_cpu(monkeypatch, caplog):
    from serfast import extract as extract_module

    def out_of_memory(*args, **kw):
        raise MemoryError("Out of memory allocating 1,234 bytes")

    monkeypatch.setattr(extract_module, "batch_features", out_of_memory)
    signals = [(3, speech("angry", 1, seconds=1.0)), (5, rng_signal(700, 4))]
    got = extract_module.feature_rows(signals, SPEC, True, "gpu")
    want = extract_module.feature_rows(signals, SPEC, True, "cpu")
    assert [r.row for r in got] == [3, 5] and not any(r.error for r in got)
    for g, w in zip(got, want):
        assert np.array_equal(g.values, w.values) and np.array_equal(g.frames, w.frames)
    assert caplog.messages == [("GPU batch failed (MemoryError: Out of memory allocating "
                                "1,234 bytes); computing its 2 clips on the CPU")]


GROUPED = """
import json, os, sys
import numpy as np
import soundfile as sf
from serfast.calls.predict import PredictOptions, predict_archive
from serfast.demo import synth_clip
model, tmp = sys.argv[1], sys.argv[2]
for k, emotion in enumerate(("angry", "sad", "happy")):
    os.makedirs(os.path.join(tmp, "spk"), exist_ok=True)
    y = np.concatenate([np.zeros(8000), synth_clip(emotion, 7, k, 22050, 2.5), np.zeros(8000)])
    sf.write(os.path.join(tmp, "spk", f"{k}.wav"), y, 22050)
probs, devices = {}, {}
for device in ("cpu", "gpu"):
    out = os.path.join(tmp, device, "labels.csv")
    os.makedirs(os.path.dirname(out))
    rep = predict_archive([os.path.join(tmp, "spk")], model, out,
                          PredictOptions(workers=1, device=device, speakers="folder"))
    devices[device] = rep.device
    import csv
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    probs[device] = [[float(r[k]) for k in r if k.startswith("p_")] for r in rows]
a, b = np.array(probs["cpu"]), np.array(probs["gpu"])
print(json.dumps({"devices": devices, "windows": len(a), "same_shape": a.shape == b.shape,
                  "diff": float(np.abs(a - b).max()) if a.shape == b.shape else 1.0}))
"""


def test_speaker_groups_on_the_gpu_with_numpy_as_cupy(trained_model, tmp_path):
    """predict --speakers folder --device gpu (CuPy stood in for by NumPy, CUDA kernels on
    the simulator): the first pass's sums and the labels come out as on the CPU."""
    write_stand_in(tmp_path)
    res = simulated(GROUPED, tmp_path, args=[trained_model, tmp_path / "run"])
    assert res["devices"] == {"cpu": "CPU", "gpu": "GPU 0 (Stand-in GPU)"}
    assert res["windows"] >= 3 and res["same_shape"] and res["diff"] < 1e-3
