"""Which device computes features: ``auto``, ``cpu`` or ``gpu``, and the dispatch to it.

The GPU backend needs CuPy and a usable CUDA device (``pip install serfast[gpu]``);
``auto`` uses it when it is there and falls back to the CPU otherwise, ``gpu`` refuses
with one line saying why.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..errors import one_line
from .spec import BatchFeatures, FeatureSpec

__all__ = ["DEVICES", "GPU_PROCESS_BYTES", "DeviceError", "batch_features", "describe",
           "gpu_problem", "gpu_processes", "resolve_device", "run_device"]

DEVICES = ("auto", "cpu", "gpu")
#: GPU memory a process holds once it has used the GPU (CUDA context, cuFFT plans, cuBLAS
#: workspace): an estimate, used to cap how many processes share one GPU.
GPU_PROCESS_BYTES = 512 << 20


class DeviceError(Exception):
    """The requested device cannot be used; ``str(err)`` is one line."""


@cache
def gpu_problem() -> str | None:
    """Why the GPU backend cannot run here (one line), or None when it can (checked once
    per process)."""
    try:
        import cupy
    except ImportError:
        return "cupy not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
        cupy.zeros(1, cupy.float32).sum().item()  # a context and a kernel launch work
    except Exception as err:  # noqa: BLE001 - any CUDA failure means "not usable"
        return f"CUDA error: {one_line(err)}"
    try:
        from .gpu import check_kernels

        check_kernels(cupy)
    except Exception as err:  # noqa: BLE001
        return f"Numba-CUDA kernel error: {one_line(err, with_type=True)}"
    return None


def resolve_device(name: str) -> str:
    """``"cpu"`` or ``"gpu"`` for ``name`` in ``DEVICES``; raises :class:`DeviceError`
    for an unknown name or for ``gpu`` without a usable CUDA GPU."""
    if name not in DEVICES:
        raise DeviceError(f"--device {name}: choose one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    problem = gpu_problem()
    if problem is None:
        return "gpu"
    if name == "gpu":
        raise DeviceError(f"--device gpu: no usable CUDA GPU ({problem})")
    return "cpu"


def run_device(name: str, cluster: str = "") -> str:
    """The device of a run on this machine (:func:`resolve_device`). With a Dask
    ``cluster``, ``gpu`` is refused: each Dask worker picks its own device (``auto``)."""
    device = resolve_device(name)
    if cluster and name == "gpu":
        raise DeviceError("--device gpu cannot be combined with --cluster: each Dask "
                          "worker uses its own GPU when it has one (--device auto)")
    return device


def gpu_processes() -> int:
    """How many processes may share the GPU: each holds about ``GPU_PROCESS_BYTES``
    however little it computes, and together they may hold a quarter of the GPU's memory
    (40 on an 80-GB card, 4 on an 8-GB one)."""
    import cupy

    total = cupy.cuda.runtime.memGetInfo()[1]
    return max(1, total // 4 // GPU_PROCESS_BYTES)


def describe(device: str) -> str:
    """A few words for run summaries: ``"CPU"`` or ``"GPU 0 (NVIDIA H100 80GB HBM3)"``."""
    if device != "gpu":
        return "CPU"
    import cupy

    index = cupy.cuda.Device().id
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return f"GPU {index} ({name.decode() if isinstance(name, bytes) else name})"


def batch_features(signals: list[np.ndarray], spec: FeatureSpec = FeatureSpec(),
                   frames: bool = False, device: str = "auto",
                   memory_share: float = 1.0, pitch_voice=None) -> BatchFeatures:
    """``compute_batch`` on the resolved device; ``device`` as :func:`resolve_device`;
    ``memory_share``: the part of the GPU's memory this call may use; ``pitch_voice``
    as ``compute_batch`` takes it.

    Returns host arrays in either case: values (n_clips, n_features) float32.
    """
    if resolve_device(device) == "cpu":
        from .cpu import compute_batch  # Numba and SciPy: only where features run

        return compute_batch(signals, spec, frames=frames, pitch_voice=pitch_voice)
    import cupy

    from .gpu import compute_batch_xp

    return compute_batch_xp(signals, spec, frames=frames, xp=cupy,
                            memory_share=memory_share, pitch_voice=pitch_voice)
