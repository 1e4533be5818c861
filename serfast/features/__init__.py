"""The feature engine: one spec, filter banks, and the CPU and GPU backends side by side.
The public names load on first use (:mod:`lazy_loader`): ``FeatureSpec`` alone does not
load Numba or SciPy."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "spec": ["BatchFeatures", "FeatureSpec", "n_frames"],
    "cpu": ["compute_batch"],
})
