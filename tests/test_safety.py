"""What serfast must not do to its user: write into its own installed package, change the
calling process's settings, or load a model that names code it does not know."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import serfast
from serfast.model import ModelError, load_predictor

PACKAGE = pathlib.Path(serfast.__file__).parent


def _python(code: str, **env) -> str:
    """Run ``code`` in a fresh interpreter with ``env`` added; its stdout."""
    full = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    full.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


KERNEL_CACHE = """
import numba, numpy as np
from serfast.features import cpu_kernels, pitch_kernels
paths = {d._cache._cache_path for m in (cpu_kernels, pitch_kernels) for d in vars(m).values()
         if isinstance(d, numba.core.registry.CPUDispatcher)}
cpu_kernels.frame_clip(np.zeros(1000, np.float32), 0, np.ones(64, np.float32), 16,
                       np.zeros((3, 64), np.float32))
print(repr(numba.config.CACHE_DIR))
print("\\n".join(sorted(paths)))
"""


def test_kernel_cache_is_a_per_user_folder_not_the_package(tmp_path):
    out = _python(KERNEL_CACHE, XDG_CACHE_HOME=str(tmp_path)).splitlines()
    assert out[0] == "''"  # numba's setting is left as the caller had it
    assert out[1:] and all(p.startswith(str(tmp_path / "serfast" / "numba")) for p in out[1:])
    written = list((tmp_path / "serfast" / "numba").rglob("cpu_kernels.frame_clip-*.nbi"))
    assert written, "the compiled kernel was not cached in the per-user folder"


def test_kernel_cache_honours_numba_cache_dir(tmp_path):
    out = _python(KERNEL_CACHE, XDG_CACHE_HOME=str(tmp_path / "xdg"),
                  NUMBA_CACHE_DIR=str(tmp_path / "mine")).splitlines()
    assert out[0] == repr(str(tmp_path / "mine"))
    assert all(p.startswith(str(tmp_path / "mine")) for p in out[1:])
    assert not (tmp_path / "xdg").exists()


def test_every_cached_kernel_goes_through_the_kernel_cache():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "cache=True" in (text := p.read_text(encoding="utf-8"))
                 and "from numba import njit" in text]
    assert not offenders, f"cached with numba's own njit (writes into the package): {offenders}"


# --- the caller's process is left as it was ----------------------------------------------

LIBRARY_CALLER = r"""
import os, random, sys
import numpy as np
from threadpoolctl import threadpool_info

dup2_calls = []
real_dup2 = os.dup2
os.dup2 = lambda a, b, *rest: (dup2_calls.append(b), real_dup2(a, b, *rest))[1]

import matplotlib
matplotlib.use("svg")  # the caller's backend, which serfast's plots must not switch
import serfast
from serfast import TrainOptions, evaluate, train

def settings(libraries=None):
    threads = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()}
    return dict(env="TF_CPP_MIN_LOG_LEVEL" in os.environ, backend=matplotlib.get_backend(),
                threads={k: threads[k] for k in libraries or threads})

def generators():
    return dict(python=random.getstate(), numpy=np.random.get_state()[1].tolist())

store, model = sys.argv[1], sys.argv[2]
options = TrainOptions(cv=2, ensemble=1, epochs=1, classes="neutral,happy,sad")
before = settings()
train([store], model, options)  # imports TensorFlow
evaluate(model, [store])
after = settings(before["threads"])
print("changed:", sorted(k for k in before if before[k] != after[k]))
random.seed(1)
np.random.seed(1)
before = generators()  # TensorFlow's own import moves Python's generator: now imported
train([store], model + "2", TrainOptions(cv=0, ensemble=1, epochs=1, classes="happy,sad"))
after = generators()
print("generators changed:", sorted(k for k in before if before[k] != after[k]))

import tensorflow as tf
from tensorflow.python.framework import config as tf_config
from serfast.process import owned
print("fd 2 redirected:", 2 in dup2_calls)
print("intra-op threads:", tf.config.threading.get_intra_op_parallelism_threads())
print("op determinism:", tf_config.is_op_determinism_enabled())
print("owned:", owned())
"""


def test_library_train_and_evaluate_leave_the_callers_settings(tmp_path):
    from serfast.demo import make_demo_corpus
    from serfast.extract import ExtractOptions, extract
    from serfast.features.spec import STORE_SPEC

    make_demo_corpus(str(tmp_path / "corpus"), speakers=2, takes=1)
    store = str(tmp_path / "store.npy")  # serfast extract's default store: no note either
    extract(str(tmp_path / "corpus"), store, ExtractOptions(spec=STORE_SPEC, frames=True,
                                                            workers=1))
    done = subprocess.run([sys.executable, "-c", LIBRARY_CALLER, store, str(tmp_path / "model")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-6:] == [
        "changed: []", "generators changed: []", "fd 2 redirected: False", "intra-op threads: 0",
        "op determinism: False", "owned: False"]


def test_serfast_train_prints_only_its_own_lines(tmp_path):
    """The CLI imports TensorFlow with its start-up notices hidden (absl, CPU-feature
    guard), however the first import is reached (the trainer's determinism switch)."""
    from serfast.demo import make_demo_corpus
    from serfast.extract import ExtractOptions, extract
    from serfast.features.spec import STORE_SPEC

    make_demo_corpus(str(tmp_path / "corpus"), speakers=2, takes=1)
    store = str(tmp_path / "store.npy")  # serfast extract's default store: no note either
    extract(str(tmp_path / "corpus"), store, ExtractOptions(spec=STORE_SPEC, frames=True,
                                                            workers=1))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "serfast_cli", "train", store, "--model",
                           str(tmp_path / "m"), "--cv", "0", "--ensemble", "1", "--epochs",
                           "1", "--quiet"], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"model and report -> {re.escape(str(tmp_path / 'm'))} "
                                            r"\(\d+ s\)", lines[0]), lines


def test_a_dask_workers_thread_limits_are_restored_after_each_task():
    code = r"""
from threadpoolctl import threadpool_info
from serfast.features.filterbanks import filter_banks
from serfast.features.spec import FeatureSpec
from serfast import workers
import serfast.features.cpu  # the libraries a task loads, loaded before the count

def task(t):
    return [lib["num_threads"] for lib in threadpool_info()]

before = [lib["num_threads"] for lib in threadpool_info()]
spec = FeatureSpec()
inside = workers._cluster_task(0, "run", task, (), spec, None, filter_banks(spec))
after = [lib["num_threads"] for lib in threadpool_info()]
from serfast.process import owned
print(bool(inside) and set(inside) == {1}, after == before, owned())
"""
    assert _python(code).split() == ["True", "True", "False"]


# --- a model file names no code ----------------------------------------------------------


def test_keras_is_a_version_without_the_published_safe_mode_bypasses():
    from importlib.metadata import version

    major, minor, patch = (int(p) for p in version("keras").split(".")[:3])
    assert (major, minor, patch) >= (3, 12, 1) and (major, minor) != (3, 13)


def _edit_config(model_dir, **changes):
    path = model_dir / "model.json"
    meta = json.loads(path.read_text())
    meta["config"].update(changes)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("config", [{"network": "evil"}, {"network": "serfast", "hook": 1},
                                    {"members": ["stats", "evil"]}])
def test_a_model_naming_an_unknown_network_is_refused(trained_model, tmp_path, config):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    _edit_config(model_dir, **config)
    with pytest.raises(ModelError, match="unknown network 'evil'|not serfast's|"
                                         "unknown ensemble member kind 'evil'"):
        load_predictor(str(model_dir))


def test_a_network_with_a_lambda_layer_is_refused(trained_model, tmp_path):
    """safe_mode: a Keras file whose config would run Python code does not load."""
    from serfast.model.networks import keras_modules

    keras, layers = keras_modules()
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    x = keras.Input((4,))
    evil = keras.Model(x, layers.Lambda(lambda v: v * 2)(x))
    os.remove(model_dir / "network.keras")
    evil.save(model_dir / "network.keras")
    _edit_config(model_dir, network="method")
    with pytest.raises(ModelError, match="cannot be loaded safely"):
        load_predictor(str(model_dir))
    _edit_config(model_dir, network="serfast")
    with pytest.raises(ModelError, match="cannot be loaded safely"):
        load_predictor(str(model_dir), use_keras=True)
