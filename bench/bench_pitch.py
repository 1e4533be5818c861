"""Pitch and voice quality per clip: serfast against librosa.pyin and openSMILE eGeMAPSv02.

On the same clips (the seed crop: offset 0.6 s, 2.5 s, 22,050 Hz, from each corpus under
``../shared/corpora``), one process, one thread, this times per clip:

- serfast: ``pitch_voice_row`` (one pYIN/YIN pass, then the pitch and voice statistics:
  the engine's path), and ``pitch_row`` + ``voice_row`` called separately (two passes);
- librosa: ``librosa.pyin`` (the same arguments) + ``pitch_stats`` — the reference loop for
  the pitch columns (librosa has no jitter, shimmer or HNR);
- openSMILE ``eGeMAPSv02`` functionals (``opensmile`` package, if installed) on the same
  audio: all 88 columns, which include F0, jitter, shimmer and HNR.

It also reports pYIN's agreement with librosa over all frames of the clips. Medians of
per-clip CPU times (``time.process_time``: robust to other jobs sharing the cores); the
methods take turns on each clip.

    python bench/bench_pitch.py [--per-corpus 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from test_pitch import ARGS, SR, real_clips  # noqa: E402

from serfast.features.pitch import pitch_row, pitch_stats, pitch_track  # noqa: E402
from serfast.features.voice import pitch_voice_row, voice_row  # noqa: E402


def cpu_ms(fns, clips):
    """Per-clip CPU milliseconds of each ``fns[name](y)``, the methods taking turns on each
    clip (so a change in the machine's load weighs on all alike), after a warm-up call."""
    for fn in fns.values():
        fn(clips[0])
    out = {name: [] for name in fns}
    for y in clips:
        for name, fn in fns.items():
            t0 = time.process_time()
            fn(y)
            out[name].append((time.process_time() - t0) * 1e3)
    return {name: np.array(t) for name, t in out.items()}


def separate(y):
    return pitch_row(y, SR), voice_row(y, SR)


def main():
    import librosa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-corpus", type=int, default=10)
    args = parser.parse_args()
    clips = real_clips(args.per_corpus)
    print(f"{len(clips)} clips of {len(clips[0]) / SR:.1f} s")
    fns = {
        "serfast pitch+voice, one track": lambda y: pitch_voice_row(y, SR),
        "serfast pitch_row + voice_row": separate,
        "serfast pitch_track alone": lambda y: pitch_track(y, SR),
        "librosa.pyin + stats": lambda y: pitch_stats(*librosa.pyin(y, **ARGS), SR),
    }
    try:
        import opensmile
    except ImportError:
        print("opensmile not installed: its row is skipped")
    else:
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                feature_level=opensmile.FeatureLevel.Functionals)
        fns["openSMILE eGeMAPSv02"] = lambda y: smile.process_signal(y, SR)
    with threadpool_limits(1):
        times = cpu_ms(fns, clips)
    base = np.median(times["serfast pitch+voice, one track"])
    for name, t in times.items():
        print(f"{name:34s} median {np.median(t):8.2f} ms/clip   "
              f"{np.median(t) / base:7.1f}x serfast's")
    frames = agree = both = within = 0
    for y in clips:
        f0, voiced, _ = pitch_track(y, SR)
        ref_f0, ref_voiced, _ = librosa.pyin(y, **ARGS)
        frames += len(voiced)
        agree += np.count_nonzero(voiced == ref_voiced)
        mask = voiced & ref_voiced
        both += np.count_nonzero(mask)
        within += np.count_nonzero(np.abs(1200 * np.log2(f0[mask] / ref_f0[mask])) <= 1.0)
    print(f"pYIN vs librosa: voicing agrees on {agree}/{frames} frames "
          f"({agree / frames:.4%}); F0 within 1 cent on {within}/{both} both-voiced frames "
          f"({within / both:.4%})")


if __name__ == "__main__":
    main()
