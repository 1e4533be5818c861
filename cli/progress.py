"""A one-line progress display on a terminal (rate and ETA), silent otherwise; before the
first clip it compiles the feature kernels if Numba's cache lacks them, saying so."""

import sys
import time

import click

__all__ = ["ProgressLine", "audio_unit", "kernels_cached", "warm_kernels"]

#: Shown while the kernels compile on a machine whose cache lacks them.
COMPILING = "compiling feature kernels (once per machine)…"


def _kernel_modules(spec):
    """The modules of the CPU kernels that computing ``spec``'s columns compiles."""
    from serfast.features import cpu_kernels, pitch_kernels, praat_voicing, shape_kernels, voice

    return [cpu_kernels] + ([pitch_kernels, praat_voicing, shape_kernels, voice]
                            if spec.has_prosody else [])


def kernels_cached(spec=None) -> bool:
    """Whether Numba's cache holds every CPU kernel that ``spec``'s columns need (default:
    the seed set's, :mod:`serfast.features.cpu_kernels`), compiled from its current source
    (otherwise the first clip waits: ~6 s for the seed set, ~18 s for ``all``)."""
    from serfast.features.spec import FeatureSpec

    caches = [getattr(d, "_cache", None) for m in _kernel_modules(spec or FeatureSpec())
              for n, d in vars(m).items()
              if not n.startswith("_")  # inlined kernels have no cache of their own:
              and getattr(d, "targetoptions", {}).get("inline") != "always"]
    try:
        files = [c._cache_file for c in caches if hasattr(c, "_cache_file")]
        return all(f._load_index() for f in files)
    except Exception:  # noqa: BLE001 - another Numba's internals: do not guess
        return True


def warm_kernels(say=None, spec=None) -> float | None:
    """Compile the CPU kernels of ``spec``'s columns (default: the seed set) now, where
    Numba caches them for every later process, unless they are cached; ``say(line)`` is
    told before and after. Returns the seconds compiling took, or None when they were
    cached."""
    from serfast.features.spec import FeatureSpec

    spec = spec or FeatureSpec()
    if kernels_cached(spec):
        return None
    import numpy as np

    from serfast.features.cpu import compute_batch

    if say:
        say(COMPILING)
    start = time.perf_counter()
    noise = np.random.default_rng(0).standard_normal(spec.sr).astype(np.float32)
    compute_batch([0.1 * noise], spec)
    seconds = time.perf_counter() - start
    if say:
        say(f"compiled in {seconds:.0f} s")
    return seconds


def audio_unit(seconds: float) -> tuple[float, str]:
    """(seconds per unit, unit) that reads best for ``seconds`` of audio: s, min or h."""
    for scale, name in ((3600.0, "h"), (60.0, "min")):
        if seconds >= 2 * scale:
            return scale, name
    return 1.0, "s"


class ProgressLine:
    """Callable progress sink: ``progress(done, total, ok, failed)``; ``unit`` names items
    (``"audio"``: done and total are seconds of audio, the rate is times real time).
    Enabled, it first compiles the kernels of ``spec``'s columns (default: the seed set)
    if Numba's cache lacks them, saying so."""

    def __init__(self, enabled: bool, unit: str = "clips", spec=None):
        self.enabled = enabled and sys.stderr.isatty()
        self.unit = unit
        if self.enabled:
            warm_kernels(lambda line: click.echo(line, err=True), spec)
        self.start = time.perf_counter()
        self.last = 0.0

    def line(self, done: float, total: float, failed: int, seconds: float) -> str:
        """The display after ``seconds`` of ``done`` of ``total`` with ``failed`` failures:
        audio in the unit that suits ``total`` and its speed in times real time; counts
        as integers."""
        rate = done / max(seconds, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        if self.unit == "audio":
            scale, name = audio_unit(total)
            head = (f"{done / scale:,.1f}/{total / scale:,.1f} {name} of audio "
                    f"{rate:,.1f}x real time")
        else:
            head = f"{done:,.0f}/{total:,.0f} {self.unit} {rate:,.1f} {self.unit}/s"
        return f"{head}  ETA {eta:,.0f} s  failed {failed:,}"

    def __call__(self, done: float, total: float, ok: int = 0, failed: int = 0) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        click.echo("\r" + self.line(done, total, failed, now - self.start) + " " * 4,
                   nl=done >= total, err=True)
