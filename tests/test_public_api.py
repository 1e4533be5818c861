"""The package's public names: each resolves to the object its module defines, and
``import serfast`` loads none of the heavy libraries (a worker pool's parent relies on it)."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["serfast", "serfast.io", "serfast.features", "serfast.model", "serfast.calls"]
HEAVY = ["numpy", "numba", "scipy", "soundfile", "soxr", "librosa", "sklearn", "tensorflow",
         "keras", "matplotlib", "click"]


def test_importing_the_packages_loads_no_heavy_library():
    code = ("import sys\n"
            f"import {', '.join(PACKAGES)}\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == ""


def test_predicts_parent_loads_neither_numba_nor_scipy():
    """`serfast predict` starts its workers after importing its command: the channel
    pipeline's Numba kernels, FFTs and filters load in the workers only."""
    code = ("import sys\nimport serfast_cli.predict\n"
            "print(' '.join(m for m in ('numba', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_its_modules_object(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__ and sorted(dir(pkg)) == sorted(pkg.__all__)
    for name in pkg.__all__:
        value = getattr(pkg, name)
        home = importlib.import_module(value.__module__)
        assert getattr(home, name) is value


def test_the_top_level_names():
    import serfast
    from serfast.calls.predict import PredictOptions, predict_archive
    from serfast.extract import ExtractOptions
    from serfast.features.cpu import compute_batch
    from serfast.features.spec import FeatureSpec
    from serfast.io.corpus import scan
    from serfast.model.saved import load_predictor
    from serfast.model.train import TrainOptions, evaluate, train

    assert serfast.__version__ == "0.1.0"
    assert (serfast.ExtractOptions, serfast.scan, serfast.FeatureSpec, serfast.compute_batch,
            serfast.load_predictor, serfast.train, serfast.evaluate, serfast.TrainOptions,
            serfast.predict_archive, serfast.PredictOptions) == (
        ExtractOptions, scan, FeatureSpec, compute_batch, load_predictor, train, evaluate,
        TrainOptions, predict_archive, PredictOptions)
    assert callable(serfast.train)  # the function, though serfast.model.train is a module
    with pytest.raises(AttributeError):
        serfast.no_such_name
