"""A one-line progress display on a terminal (rate and ETA), silent otherwise."""

import sys
import time

import click


class ProgressLine:
    """Callable progress sink: ``progress(done, total, ok, failed)``; ``unit`` names items."""

    def __init__(self, enabled: bool, unit: str = "clips", scale: float = 1.0):
        self.enabled = enabled and sys.stderr.isatty()
        self.unit, self.scale = unit, scale
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: float, total: float, ok: int = 0, failed: int = 0) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        msg = (f"\r{done * self.scale:,.1f}/{total * self.scale:,.1f} {self.unit} "
               f"{rate * self.scale:,.1f} {self.unit}/s  ETA {eta:,.0f} s  failed {failed}")
        click.echo(msg + (" " * 4), nl=done >= total, err=True)
