"""The feature store: ``OUT.npy`` + ``OUT.csv`` + ``OUT.json`` (+ ``OUT.frames.npy``).

* ``OUT.npy`` — float32 (rows, columns), written through a memory map while the run goes;
  readable with ``np.load(OUT, mmap_mode="r")`` without serfast.
* ``OUT.csv`` — one line per row, same order: ``row, path, status, error, dataset,
  speaker, gender, label, duration, augment, source, frame_start, n_frames``.
* ``OUT.json`` — the feature spec, column names, serfast version, row counts.
* ``OUT.frames.npy`` — with ``frames``: float32 (total frames, n_mels + n_mfcc), the
  per-frame log-mel (dB) and MFCC of every ok row, rows in store order
  (``frame_start``/``n_frames`` in the CSV say where each row's frames are).

Atomicity and resume: while running, data goes to ``OUT.npy.partial``,
``OUT.frames.partial`` and an append-only journal ``OUT.journal``
(:class:`~serfast.io.journal.Journal`: one JSON line per finished row, written only after
that row's data is synced). Nothing exists at ``OUT`` until :meth:`StoreWriter.finish`,
which writes the CSV, JSON and frames atomically (:mod:`serfast.io.files`) and moves the
features into place last. A new writer with ``resume=True`` reopens the partial
files, keeps every journaled row and drops anything written after the last journal line,
so an interrupted run resumes to bit-identical output.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from .corpus import gender_value
from .files import atomic_write, move_into_place
from .journal import Journal
from ..features.spec import FeatureSpec

__all__ = ["CSV_FIELDS", "RowMeta", "RowResult", "Store", "StoreError", "StoreWriter",
           "open_store"]

CSV_FIELDS = ["row", "path", "status", "error", "dataset", "speaker", "gender", "label",
              "duration", "augment", "source", "frame_start", "n_frames"]


class StoreError(Exception):
    """A store that cannot be written, resumed or read; one-line message."""


@dataclass
class RowMeta:
    """What the CSV says about one row besides its outcome."""

    path: str
    dataset: str = ""
    speaker: str = ""
    gender: str = ""
    label: str = ""
    augment: str = ""
    source: int = -1  # row of the original clip for an augmented row, else -1


@dataclass
class RowResult:
    """Outcome of one row: ``values`` (n_columns - 1,) float32 when ok, else ``error``.

    ``duration`` is the decoded clip's length in seconds; ``frames``, with frame-level
    features, is (n_frames, n_mels + n_mfcc) float32.
    """

    row: int
    values: np.ndarray | None = None
    error: str = ""
    duration: float = 0.0
    frames: np.ndarray | None = None


def _paths(out: str) -> dict[str, str]:
    base = out[:-4] if out.endswith(".npy") else out
    return {
        "npy": base + ".npy", "csv": base + ".csv", "json": base + ".json",
        "frames": base + ".frames.npy", "partial": base + ".npy.partial",
        "frames_partial": base + ".frames.partial", "journal": base + ".journal",
    }


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header for C-ordered little-endian float32 of ``shape``."""
    d = repr({"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    head = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode("latin1")


@dataclass
class StoreWriter:
    """Writes rows of a store as they finish, in any order; see the module docstring.

    ``plan`` holds one :class:`RowMeta` per row; ``frames`` keeps frame-level features.
    """

    out: str
    spec: FeatureSpec
    plan: list[RowMeta]
    frames: bool = False
    resume: bool = False
    done: dict[int, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = _paths(self.out)
        self.n_cols = len(self.spec.columns)
        self.n_frame_cols = self.spec.n_mels + self.spec.n_mfcc
        if os.path.exists(self.paths["npy"]) and not self.resume:
            raise StoreError(f"{self.paths['npy']} exists; choose another OUT or delete it")
        fingerprint = {"spec": self.spec.to_dict(), "frames": self.frames,
                       "rows": [[m.path, m.augment, m.source] for m in self.plan]}
        journal = self.paths["journal"]
        if self.resume and os.path.exists(journal) and os.path.exists(self.paths["partial"]):
            self._reopen(fingerprint)
        else:
            for key in ("partial", "frames_partial", "journal"):
                if os.path.exists(self.paths[key]):
                    os.remove(self.paths[key])
            self.values = np.lib.format.open_memmap(
                self.paths["partial"], mode="w+", dtype=np.float32,
                shape=(len(self.plan), self.n_cols))
            self.frames_file = open(self.paths["frames_partial"], "wb")
            self.journal = Journal.create(journal, fingerprint)
        self._pending: list[dict] = []

    def _reopen(self, fingerprint: dict) -> None:
        self.journal, entries = Journal.resume(
            self.paths["journal"], fingerprint, StoreError,
            "the corpus or the options changed since the interrupted run "
            "(delete the .partial/.journal files to restart)")
        self.done.update((e["row"], e) for e in entries)
        frames_end = max((e["frames_at"] + 4 * e["n_frames"] * self.n_frame_cols
                          for e in self.done.values() if e["n_frames"]), default=0)
        self.values = np.load(self.paths["partial"], mmap_mode="r+")
        self.frames_file = open(self.paths["frames_partial"], "r+b")
        self.frames_file.truncate(frames_end)
        self.frames_file.seek(frames_end)

    def write(self, result: RowResult) -> None:
        """Record one finished row (made durable by the next :meth:`flush`)."""
        meta = self.plan[result.row]
        entry = {"row": result.row, "error": result.error,
                 "duration": round(float(result.duration), 6), "frames_at": 0, "n_frames": 0}
        if result.error:
            self.values[result.row] = np.nan
        else:
            self.values[result.row, :-1] = result.values
            self.values[result.row, -1] = gender_value(meta.gender)
            if self.frames and result.frames is not None:
                entry["frames_at"] = self.frames_file.tell()
                entry["n_frames"] = int(result.frames.shape[0])
                self.frames_file.write(np.ascontiguousarray(result.frames, "<f4").tobytes())
        self._pending.append(entry)

    def flush(self) -> None:
        """Make every written row durable, then journal it."""
        if not self._pending:
            return
        self.values.flush()
        self.frames_file.flush()
        os.fsync(self.frames_file.fileno())
        for entry in self._pending:
            self.done[entry["row"]] = entry
        self.journal.append(*self._pending)
        self._pending.clear()

    def finish(self, extra: dict | None = None) -> dict:
        """Write CSV, JSON and frames, then move the features into place; returns the JSON."""
        self.flush()
        missing = len(self.plan) - len(self.done)
        if missing:
            raise StoreError(f"{missing} rows were never written")
        frame_start = self._finish_frames()
        n_ok = sum(1 for e in self.done.values() if not e["error"])
        with atomic_write(self.paths["csv"], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_FIELDS)
            for i, m in enumerate(self.plan):
                e = self.done[i]
                w.writerow([i, m.path, "error" if e["error"] else "ok", e["error"], m.dataset,
                            m.speaker, m.gender, m.label, e["duration"], m.augment,
                            m.source, frame_start[i], e["n_frames"]])
        meta = {
            "serfast_version": __version__, "spec": self.spec.to_dict(),
            "columns": self.spec.columns, "rows": len(self.plan), "ok": n_ok,
            "errors": len(self.plan) - n_ok,
            "frames": ({"file": os.path.basename(self.paths["frames"]),
                        "columns": self.spec.frame_columns} if self.frames else None),
            **(extra or {}),
        }
        with atomic_write(self.paths["json"], "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
        self.values.flush()
        del self.values
        move_into_place(self.paths["partial"], self.paths["npy"])
        self.journal.remove()
        return meta

    def _finish_frames(self) -> list[int]:
        """Write ``OUT.frames.npy`` (with ``frames``) from the journaled frames in row
        order; returns each row's first frame."""
        starts, total = [], 0
        for i in range(len(self.plan)):
            starts.append(total)
            total += self.done[i]["n_frames"]
        self.frames_file.close()
        if self.frames:
            row_bytes = 4 * self.n_frame_cols
            with open(self.paths["frames_partial"], "rb") as src, \
                    atomic_write(self.paths["frames"], "wb") as dst:
                dst.write(_npy_header((total, self.n_frame_cols)))
                for i in range(len(self.plan)):
                    e = self.done[i]
                    src.seek(e["frames_at"])
                    dst.write(src.read(e["n_frames"] * row_bytes))
        os.remove(self.paths["frames_partial"])
        return starts


@dataclass
class Store:
    """A finished store opened for reading (features memory-mapped, never copied)."""

    values: np.ndarray  # (rows, columns) float32 memmap
    rows: list[dict]  # the CSV, one dict per row
    meta: dict  # the JSON
    frames: np.ndarray | None  # (total frames, n_mels + n_mfcc) float32 memmap

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.meta["spec"])

    @property
    def columns(self) -> list[str]:
        return self.meta["columns"]

    def row_frames(self, i: int) -> np.ndarray:
        """Frame-level features of row ``i``: (n_frames, n_mels + n_mfcc) float32."""
        if self.frames is None:
            raise StoreError("this store has no frame-level features (extract with --frames)")
        r = self.rows[i]
        a = int(r["frame_start"])
        return self.frames[a:a + int(r["n_frames"])]


def open_store(out: str) -> Store:
    """Open the store written at ``out`` (``X.npy``); raises StoreError if incomplete."""
    p = _paths(out)
    for key in ("npy", "csv", "json"):
        if not os.path.exists(p[key]):
            raise StoreError(f"not a complete serfast store: {p[key]} is missing")
    with open(p["json"], encoding="utf-8") as fh:
        meta = json.load(fh)
    with open(p["csv"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    values = np.load(p["npy"], mmap_mode="r")
    frames = np.load(p["frames"], mmap_mode="r") if meta.get("frames") else None
    if values.shape[0] != len(rows):
        raise StoreError(f"{p['npy']} has {values.shape[0]} rows but the CSV has {len(rows)}")
    return Store(values, rows, meta, frames)
