"""The feature store: ``OUT.npy`` + ``OUT.csv`` + ``OUT.json`` (+ ``OUT.frames.npy``).

* ``OUT.npy`` — float32 (rows, columns), written through a memory map while the run goes;
  readable with ``np.load(OUT, mmap_mode="r")`` without serfast.
* ``OUT.csv`` — one line per row, same order: ``row, path, status, error, dataset,
  speaker, gender, label, duration, augment, source, frame_start, n_frames``; text
  cells are spreadsheet-safe (:mod:`serfast.io.csv_cells`), read back as written by
  :func:`open_store`.
* ``OUT.json`` — the feature spec (its ``name`` is the feature set: ``seed``, ``prosody``
  or ``all``), column names, serfast version, row counts.
* ``OUT.frames.npy`` — with ``frames``: float32 (total frames, len(spec.frame_columns);
  a float16 file is read too, as float32),
  the per-frame log-mel (dB) and MFCC of every ok row (and, with prosody, pYIN F0 in Hz,
  0 where unvoiced, voicing probability and RMS dB), rows in store order
  (``frame_start``/``n_frames`` in the CSV say where each row's frames are).

A row is ``ok`` only when every feature (and frame) is finite; a clip whose features are
not (NaN or inf, e.g. samples so loud that float32 power overflows) is an error row.

Atomicity and resume: while running, data goes to ``OUT.npy.partial``,
``OUT.frames.partial`` and an append-only journal ``OUT.journal``
(:class:`~serfast.io.journal.Journal`: one JSON line per finished row, written only after
that row's data is synced). Nothing exists at ``OUT`` until :meth:`StoreWriter.finish`,
which writes the JSON, frames and CSV atomically (:mod:`serfast.io.files`), moves the
features into place, and only then removes the journal and ``OUT.frames.partial``. A new
writer with ``resume=True`` reopens the partial files, keeps every journaled row and drops
anything written after the last journal line, so an interrupted run resumes to
bit-identical output. Each journal line holds its clip file's size and modification time
(``stat``); a clip whose file changed since is computed again (URLs are not checked).

One run at a time: a writer holds an OS lock on ``OUT.lock`` (:class:`~serfast.io.files.
FileLock`) until it finishes or its process ends. A writer never deletes a file serfast
did not write: it refuses an OUT whose CSV, JSON or frames file is not a serfast store's,
a plain run refuses an OUT that holds a store or an interrupted run (``resume`` continues
one; ``overwrite`` removes the files of OUT's store and run and starts again).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..errors import one_line
from .corpus import gender_value, is_url
from .csv_cells import read_cell, safe_row
from .files import FileLock, atomic_write, missing_folder, move_into_place
from .journal import Journal
from .spilled_frames import FramesFile, copy_bytes, remove_spills, spill_dir
from ..features.spec import FeatureSpec

__all__ = ["CSV_FIELDS", "FramesFile", "RowMeta", "RowResult", "Store", "StoreError",
           "StoreWriter", "check_out", "file_stat", "long_frames_dir", "open_store"]

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
    features, is (n_frames, len(spec.frame_columns)) float32.
    """

    row: int
    values: np.ndarray | None = None
    error: str = ""
    duration: float = 0.0
    frames: "np.ndarray | FramesFile | None" = None


def _paths(out: str) -> dict[str, str]:
    base = out[:-4] if out.endswith(".npy") else out
    return {
        "npy": base + ".npy", "csv": base + ".csv", "json": base + ".json",
        "frames": base + ".frames.npy", "partial": base + ".npy.partial",
        "frames_partial": base + ".frames.partial", "journal": base + ".journal",
        "lock": base + ".lock", "frames_long": spill_dir(base),
    }


def long_frames_dir(out: str) -> str:
    """The folder beside store ``out`` where workers spill long files' frames
    (:mod:`serfast.io.spilled_frames`); the writer removes it when the store is finished."""
    return _paths(out)["frames_long"]


#: The files of a finished store, in the order :meth:`StoreWriter.finish` writes them
#: (the JSON first: a CSV or frames file beside no serfast JSON is not serfast's).
_FINISHED = ("json", "frames", "csv", "npy")
#: The files of a run in progress.
_RUNNING = ("journal", "partial", "frames_partial")


def check_out(out: str) -> None:
    """StoreError (one line) unless the folder of store ``out`` exists and is writable."""
    why = missing_folder(out)
    if why:
        raise StoreError(why)


def file_stat(path: str) -> list[int] | None:
    """[size in bytes, modification time in ns] of a local file; None for a URL or a
    file that cannot be read."""
    if is_url(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _serfast_json(path: str) -> dict | None:
    """The JSON of a serfast store at ``path``, or None when it is not one (or missing)."""
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and {"serfast_version", "spec"} <= set(meta) else None


def _serfast_journal(path: str) -> bool:
    """Whether ``path`` is a store journal of serfast's (its header names a spec)."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = json.loads(fh.readline())
    except (OSError, ValueError):
        return False
    return isinstance(head, dict) and {"spec", "frames", "rows"} <= set(head)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header for C-ordered little-endian float32 of ``shape``."""
    d = repr({"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    head = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode("latin1")


@dataclass
class StoreWriter:
    """Writes rows of a store as they finish, in any order; see the module docstring.

    ``plan`` holds one :class:`RowMeta` per row; ``frames`` keeps frame-level features.
    After ``resume`` onto a finished store, :attr:`complete` is True and :attr:`meta`
    holds its JSON (nothing is written); :attr:`changed` counts the clips whose files
    changed since the interrupted run (their rows are computed again). Close the writer
    (:meth:`close`, or use it as a context manager) when the run stops early.
    """

    out: str
    spec: FeatureSpec
    plan: list[RowMeta]
    frames: bool = False
    resume: bool = False
    overwrite: bool = False
    done: dict[int, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = _paths(self.out)
        self.n_cols = len(self.spec.columns)
        self.n_frame_cols = len(self.spec.frame_columns)
        self.complete, self.meta, self.changed = False, None, 0
        self._pending: list[dict] = []
        self.values = self.frames_file = self.journal = None
        self._fresh = False  # this writer started the run (rather than resumed one)
        check_out(self.out)
        self._lock = FileLock(self.paths["lock"])
        try:
            held = self._lock.acquire()
        except FileExistsError as err:
            raise StoreError(f"{err}; choose another OUT") from None
        if not held:
            raise StoreError(f"another serfast run is writing {self.paths['npy']} "
                             f"(it holds {self.paths['lock']}); wait for it to end")
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> None:
        p = self.paths
        meta = _serfast_json(p["json"])
        if meta is None:
            for key in _FINISHED:
                if os.path.exists(p[key]):
                    raise StoreError(f"{p[key]} exists and is not part of a serfast store; "
                                     "choose another OUT")
        if os.path.exists(p["journal"]) and not _serfast_journal(p["journal"]):
            raise StoreError(f"{p['journal']} exists and is not a serfast journal; "
                             "choose another OUT")
        running = [p[k] for k in _RUNNING if os.path.exists(p[k])]
        if meta is not None and os.path.exists(p["npy"]):
            if self.resume:  # a finish cut short after the move may have left these
                if meta["spec"] != json.loads(json.dumps(self.spec.to_dict())) or \
                        bool(meta.get("frames")) != self.frames:
                    raise StoreError(f"{p['npy']} is a finished store extracted with other "
                                     "options; choose another OUT, or --overwrite to replace it")
                self.complete, self.meta = True, meta
                self._remove(_RUNNING)
                return
            if not self.overwrite:
                raise StoreError(f"{p['npy']} is a finished store; choose another OUT, "
                                 "or --overwrite to replace it")
        elif (running or meta is not None) and not (self.resume or self.overwrite):
            raise StoreError(f"{p['npy']}: an interrupted run is there "
                             f"({os.path.basename((running or [p['json']])[0])}); continue it "
                             "with --resume, or start again with --overwrite")
        if self.overwrite:
            self._remove(_FINISHED[::-1] if meta is not None else ())
        self._stats = {m.path: file_stat(m.path) for m in self.plan}
        fingerprint = {"spec": self.spec.to_dict(), "frames": self.frames,
                       "rows": [[m.path, m.augment, m.source] for m in self.plan]}
        if self.resume and len(running) == len(_RUNNING):
            self._reopen(fingerprint)
            return
        self._remove(_RUNNING)
        self._remove_long_frames()
        self._fresh = True
        self.journal = Journal.create(p["journal"], fingerprint)
        self.values = np.lib.format.open_memmap(
            p["partial"], mode="w+", dtype=np.float32, shape=(len(self.plan), self.n_cols))
        self.frames_file = open(p["frames_partial"], "wb")

    def _remove(self, keys) -> None:
        for key in keys:
            if os.path.exists(self.paths[key]):
                os.remove(self.paths[key])

    def _reopen(self, fingerprint: dict) -> None:
        p = self.paths
        row_bytes = 4 * self.n_frame_cols
        frames_size = os.path.getsize(p["frames_partial"])

        def frames_end(e: dict) -> int:
            return e["frames_at"] + row_bytes * e["n_frames"] if e["n_frames"] else 0

        self.journal, entries = Journal.resume(
            p["journal"], fingerprint, StoreError,
            "the corpus or the options changed since the interrupted run "
            "(start again with --overwrite)",
            usable=lambda e: frames_end(e) <= frames_size)
        try:
            self.values = np.load(p["partial"], mmap_mode="r+")
        except (OSError, ValueError) as err:
            raise StoreError(f"{p['partial']} is damaged ({' '.join(str(err).split())}); "
                             "start again with --overwrite") from None
        if self.values.shape != (len(self.plan), self.n_cols) or self.values.dtype != np.float32:
            raise StoreError(f"{p['partial']} is damaged (shape {self.values.shape}); "
                             "start again with --overwrite")
        latest = {e["row"]: e for e in entries}  # a row computed again: its last line
        changed = {self.plan[r].path for r, e in latest.items()
                   if e.get("stat") != self._stats[self.plan[r].path]}
        self.changed = len(changed)
        self.done.update((r, e) for r, e in latest.items() if self.plan[r].path not in changed)
        end = max(map(frames_end, entries), default=0)  # never reuse a journaled region
        self.frames_file = open(p["frames_partial"], "r+b")
        self.frames_file.truncate(end)
        self.frames_file.seek(end)

    def write(self, result: RowResult) -> None:
        """Record one finished row (made durable by the next :meth:`flush`)."""
        meta = self.plan[result.row]
        error = result.error
        spilled = isinstance(result.frames, FramesFile)
        if not error and not (np.isfinite(result.values).all() and (
                result.frames is None or spilled or np.isfinite(result.frames).all())):
            error = "feature error: non-finite features (NaN or inf)"
        entry = {"row": result.row, "error": error,
                 "duration": round(float(result.duration), 6), "frames_at": 0, "n_frames": 0,
                 "stat": self._stats[meta.path]}
        if error:
            self.values[result.row] = np.nan
        else:
            self.values[result.row, :-1] = result.values
            self.values[result.row, -1] = gender_value(meta.gender)
            if self.frames and result.frames is not None:
                entry["frames_at"] = self.frames_file.tell()
                if spilled:
                    entry["n_frames"] = result.frames.n_frames
                    try:
                        result.frames.copy_into(self.frames_file, 4 * self.n_frame_cols)
                    except OSError as err:
                        raise StoreError(f"spilled frames of row {result.row}: "
                                         f"{one_line(err)}") from None
                else:
                    entry["n_frames"] = int(result.frames.shape[0])
                    self.frames_file.write(np.ascontiguousarray(result.frames, "<f4").tobytes())
        if spilled:
            result.frames.remove()
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
        """Write JSON, frames and CSV, then move the features into place, then remove the
        run's files and the lock; returns the JSON."""
        self.flush()
        missing = len(self.plan) - len(self.done)
        if missing:
            raise StoreError(f"{missing} rows were never written")
        n_ok = sum(1 for e in self.done.values() if not e["error"])
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
        frame_start = self._finish_frames()
        with atomic_write(self.paths["csv"], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_FIELDS)
            for i, m in enumerate(self.plan):
                e = self.done[i]
                w.writerow(safe_row([i, m.path, "error" if e["error"] else "ok", e["error"],
                                     m.dataset, m.speaker, m.gender, m.label, e["duration"],
                                     m.augment, m.source, frame_start[i], e["n_frames"]]))
        self.values.flush()
        self.values = None
        move_into_place(self.paths["partial"], self.paths["npy"])
        self.journal.remove()
        self.journal = None
        os.remove(self.paths["frames_partial"])
        self._remove_long_frames()
        self.close()
        return meta

    def _remove_long_frames(self) -> None:
        remove_spills(self.paths["frames_long"])

    def close(self) -> None:
        """Close the run's files and release the lock. The run stays resumable; a run
        this writer started that journaled no row leaves nothing behind."""
        if self.frames_file is not None:
            self.frames_file.close()
        if self.journal is not None:
            self.journal.close()
            if self._fresh and not self.done:
                self.values = None
                self._remove(_RUNNING)
        self.values = self.frames_file = self.journal = None
        self._lock.release()

    def _finish_frames(self) -> list[int]:
        """Write ``OUT.frames.npy`` (with ``frames``) from the journaled frames in row
        order; returns each row's first frame."""
        starts, total = [], 0
        for i in range(len(self.plan)):
            starts.append(total)
            total += self.done[i]["n_frames"]
        self.frames_file.close()
        self.frames_file = None
        if self.frames:
            row_bytes = 4 * self.n_frame_cols
            with open(self.paths["frames_partial"], "rb") as src, \
                    atomic_write(self.paths["frames"], "wb") as dst:
                dst.write(_npy_header((total, self.n_frame_cols)))
                for i in range(len(self.plan)):
                    e = self.done[i]
                    src.seek(e["frames_at"])
                    try:
                        copy_bytes(src, dst, e["n_frames"] * row_bytes)
                    except OSError as err:
                        raise StoreError(one_line(err)) from None
        return starts


@dataclass
class Store:
    """A finished store opened for reading (features memory-mapped, never copied)."""

    values: np.ndarray  # (rows, columns) float32 memmap
    rows: list[dict]  # the CSV, one dict per row
    meta: dict  # the JSON
    frames: np.ndarray | None  # (total frames, len(spec.frame_columns)) float32 memmap

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.meta["spec"])

    @property
    def columns(self) -> list[str]:
        return self.meta["columns"]

    def row_frames(self, i: int) -> np.ndarray:
        """Frame-level features of row ``i``: (n_frames, len(spec.frame_columns)) float32
        (a view of a float32 file, a converted copy of a float16 one)."""
        if self.frames is None:
            raise StoreError("this store has no frame-level features (re-extract with frames: "
                             "serfast extract without --no-frames)")
        r = self.rows[i]
        a = int(r["frame_start"])
        return np.asarray(self.frames[a:a + int(r["n_frames"])], dtype=np.float32)


def open_store(out: str) -> Store:
    """Open the store written at ``out`` (``X.npy``); raises StoreError if incomplete."""
    p = _paths(out)
    for key in ("npy", "csv", "json"):
        if not os.path.exists(p[key]):
            raise StoreError(f"not a complete serfast store: {p[key]} is missing")
    try:
        with open(p["json"], encoding="utf-8") as fh:
            meta = json.load(fh)
        with open(p["csv"], newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            lacking = [f for f in CSV_FIELDS if f not in (reader.fieldnames or ())]
            if lacking:
                raise StoreError(f"damaged serfast store {out}: {p['csv']} lacks the "
                                 f"column{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}")
            raw = list(reader)
        short = next((i for i, r in enumerate(raw) if None in r or None in r.values()), None)
        if short is not None:
            raise StoreError(f"damaged serfast store {out}: row {short} of {p['csv']} has "
                             f"{'more' if None in raw[short] else 'fewer'} cells than its header")
        rows = [{k: read_cell(v) for k, v in r.items()} for r in raw]
        values = np.load(p["npy"], mmap_mode="r")
        frames = np.load(p["frames"], mmap_mode="r") if meta.get("frames") else None
        FeatureSpec.from_dict(meta["spec"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, csv.Error) as err:
        raise StoreError(f"damaged serfast store {out}: {err.__class__.__name__}") from None
    if values.shape[0] != len(rows):
        raise StoreError(f"{p['npy']} has {values.shape[0]} rows but the CSV has {len(rows)}")
    return Store(values, rows, meta, frames)
