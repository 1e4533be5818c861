"""librosa 0.11's constants behind the seed features, written once for every backend.

Each is the default of the librosa function named beside it (``VARIANCE_FLOOR`` is
serfast's rule where ``scipy.stats`` is undefined); the CPU and GPU kernels and the librosa
reference all read them from here. Pure: imports nothing but NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["A440", "AMIN", "OCTAVE_ZERO_HZ", "PIPTRACK_THRESHOLD", "PITCH_RANGE",
           "TINY32", "TUNING_EDGES", "TUNING_RESOLUTION", "VARIANCE_FLOOR", "ZCR_THRESHOLD"]

#: ``zero_crossing_rate`` (``zero_crossings(threshold=1e-10, zero_pos=True)``): a sample
#: with ``|x| <= ZCR_THRESHOLD`` counts as zero, and zero as positive, so a sample is
#: negative exactly when ``x < -ZCR_THRESHOLD``.
ZCR_THRESHOLD = 1e-10
#: ``power_to_db(amin=1e-10)``: power floor before the logarithm.
AMIN = 1e-10
#: ``piptrack(threshold=0.1)``: a peak must exceed this share of its frame's max |X|.
PIPTRACK_THRESHOLD = 0.1
#: ``piptrack(fmin=150.0, fmax=4000.0)``: frequencies in Hz searched for peaks (fmax is
#: capped at Nyquist).
PITCH_RANGE = (150.0, 4000.0)
#: Reference pitch in Hz of ``hz_to_octs`` (``tuning=0.0``).
A440 = 440.0
#: Frequency of octave 0 in ``hz_to_octs``: ``octs = log2(f / OCTAVE_ZERO_HZ)`` (A0,
#: 27.5 Hz).
OCTAVE_ZERO_HZ = A440 / 16.0
#: ``estimate_tuning(resolution=0.01)``: tuning resolution in fractions of a chroma bin.
TUNING_RESOLUTION = 0.01
#: The values ``estimate_tuning`` can return: the left edges of its histogram bins, from
#: -0.5 to 0.5 (float64).
TUNING_EDGES = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
#: Smallest positive normal float32, ``util.tiny`` of float32 data: ``util.normalize``
#: leaves frames below it as they are, and ``spectral_centroid`` /
#: ``spectral_bandwidth`` do not divide by such frame sums.
TINY32 = np.float32(np.finfo(np.float32).tiny)
#: Variance at or below which a clip counts as constant: its skew and kurtosis are 0
#: (``scipy.stats`` returns NaN there).
VARIANCE_FLOOR = 1e-30
