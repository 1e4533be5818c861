"""Benchmark: the prosody and all feature sets against librosa, openSMILE and the decoding
floor, on the same real clips and one core, start-up included (one fresh process each).

  - serfast ``extract --workers 1 --features prosody|all|seed --no-embedding`` (the sets
    as issue 15 defines them), and ``all`` with the speaker encoder's columns
    (``all+embedding``: ``serfast extract``'s default store);
  - librosa's reference loop for the prosody columns (load, pyin, rms, contrast,
    flatness, roll-off, onset strength, mfcc, deltas);
  - openSMILE eGeMAPSv02 functionals (``pip install opensmile``, bench only);
  - the decoding floor: soundfile crop + soxr HQ to 22,050 Hz and nothing else.

    python bench/bench_prosody.py [--corpus ../shared/corpora/ravdess] [--clips 40]
                                  [--repeat 1] [--floor-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import DEFAULT_CORPUS, run, write_manifest  # noqa: E402

PRELUDE = """
import sys, warnings
warnings.simplefilter("ignore")
paths = [p for p in open(sys.argv[1]).read().split("\\n") if p]
"""
FLOOR = PRELUDE + """
import soundfile as sf, soxr
for p in paths:
    with sf.SoundFile(p) as f:
        f.seek(min(int(0.6 * f.samplerate), f.frames))
        y = f.read(int(2.5 * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
    soxr.resample(y, f.samplerate, 22050, quality="HQ")
"""
LIBROSA = PRELUDE + """
import numpy as np, librosa
for p in paths:
    y, sr = librosa.load(p, sr=22050, offset=0.6, duration=2.5)
    librosa.pyin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)
    S = np.abs(librosa.stft(y))
    tracks = np.vstack([librosa.feature.spectral_contrast(S=S, sr=sr),
                        librosa.feature.spectral_flatness(S=S),
                        librosa.feature.spectral_rolloff(S=S, sr=sr),
                        librosa.onset.onset_strength(y=y, sr=sr)[None],
                        librosa.feature.mfcc(y=y, sr=sr)])
    librosa.feature.delta(tracks)
    librosa.amplitude_to_db(librosa.feature.rms(y=y))
"""
OPENSMILE = PRELUDE + """
import opensmile
smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                        feature_level=opensmile.FeatureLevel.Functionals, num_workers=1)
for p in paths:
    smile.process_file(p, start=0.6, end=3.1)
"""


def rate(cmd: list[str], n: int, repeat: int) -> float:
    """Median clips/s of ``repeat`` fresh runs of ``cmd``."""
    return statistics.median(n / run(cmd)[0] for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--floor-only", action="store_true",
                    help="Time serfast against the decoding floor only (no librosa loop, "
                         "no openSMILE): the ratios to the floor, for many clips.")
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.corpus).rglob("*.flac"))
    files = files[::max(1, len(files) // args.clips)][:args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp, "list.txt")
        listing.write_text("\n".join(files))
        manifest = write_manifest(files, str(Path(tmp, "m.csv")))
        py = [sys.executable, "-c"]
        rates = {"floor": rate(py + [FLOOR, str(listing)], len(files), args.repeat)}
        for name in ("seed", "prosody", "all", "all+embedding"):
            feature_set, _, embedding = name.partition("+")
            rates[name] = statistics.median(
                len(files) / run([sys.executable, "-m", "serfast_cli", "extract", manifest,
                                  str(Path(tmp, f"{feature_set}{i}{embedding}.npy")),
                                  "--workers", "1", "--features", feature_set,
                                  "--embedding" if embedding else "--no-embedding",
                                  "--offset", "0.6", "--duration", "2.5", "--quiet"])[0]
                for i in range(args.repeat))
        if not args.floor_only:
            rates["librosa"] = rate(py + [LIBROSA, str(listing)], len(files), args.repeat)
            rates["opensmile"] = rate(py + [OPENSMILE, str(listing)], len(files), args.repeat)
    print(f"{len(files)} clips, one core, clips/s (medians of {args.repeat}):")
    for k, v in rates.items():
        print(f"  {k:14s} {v:8.1f}")
    if not args.floor_only:
        print(f"prosody vs librosa {rates['prosody'] / rates['librosa']:.1f}x, vs openSMILE "
              f"{rates['prosody'] / rates['opensmile']:.1f}x; ", end="")
    print(f"floor/seed {rates['floor'] / rates['seed']:.2f}x, "
          f"floor/all {rates['floor'] / rates['all']:.2f}x, "
          f"floor/all+embedding {rates['floor'] / rates['all+embedding']:.2f}x")


if __name__ == "__main__":
    main()
