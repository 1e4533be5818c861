"""reuse_freed_memory: per-clip arrays stop faulting pages in again (Linux glibc)."""

import subprocess
import sys

import pytest

CLIPS = """
import resource, sys
import numpy as np
from serfast.malloc import reuse_freed_memory
changed = reuse_freed_memory() if sys.argv[1] == "1" else False

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def clip():  # the arrays of one clip: decoded crop, frames, spectra, resampled clip
    audio = np.ones(120000, np.float32)
    frames = np.ones((108, 2048), np.float32)
    del audio
    spectra = np.ones((108, 1025), np.complex64)
    clip = np.ones(55125, np.float32)
    del frames, spectra, clip

for _ in range(5):
    clip()
before = faults()
for _ in range(100):
    clip()
print(changed, (faults() - before) / 100)
"""


def faults_per_clip(reuse: bool) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", CLIPS, "1" if reuse else "0"], check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_reused_memory_is_not_faulted_in_again():
    _, default = faults_per_clip(False)
    changed, reused = faults_per_clip(True)
    assert changed
    assert reused < 5 < default  # ~460 page faults per clip with glibc's defaults


FEATURES = """
import resource, sys
import numpy as np
from serfast.features.cpu import compute_batch
from serfast.process import own_this_process

if sys.argv[1] == "1":
    own_this_process()
y = (np.random.default_rng(0).standard_normal(55125) * 0.1).astype(np.float32)
for _ in range(5):
    compute_batch([y])
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    compute_batch([y])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


def compute_batch_faults(owned: bool) -> float:
    out = subprocess.run([sys.executable, "-c", FEATURES, "1" if owned else "0"], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_compute_batch_reuses_its_buffers_in_serfasts_processes_only():
    """In a process serfast owns (its CLI, its workers) a 2.5 s clip's ~3 MB of buffers
    are not faulted in each time; a program that calls compute_batch as a library keeps
    its own malloc settings (glibc's defaults here: the buffers are faulted in again)."""
    assert compute_batch_faults(owned=True) < 5
    assert compute_batch_faults(owned=False) > 50
