"""What serfast must not do to its user: write into its own installed package, change the
calling process's settings, or load a model that names code it does not know."""

import os
import pathlib
import subprocess
import sys

import serfast

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
