"""The outputs of ``serfast predict``: the labels CSV (``--out``, e.g. ``day1.csv``) and,
named after it, its summary (``day1.summary.csv``) and segments (``day1.segments.csv``);
:func:`output_paths` gives the names.

Each file's columns and the functions that build its rows from a channel's result sit
side by side. Text from the user (file names, labels, errors) is written as spreadsheet-safe
cells (:mod:`serfast.io.csv_cells`). Rows are written file by file, in archive order, to
``OUT.partial`` and ``SUMMARY.partial``; after a file's rows are flushed and synced, one
JSON line in ``OUT.journal`` (:class:`~serfast.io.journal.Journal`) records the file and
the byte length of both partial files. Nothing exists at ``OUT`` until
:meth:`LabelWriter.finish` moves the partial files into place. ``resume=True`` keeps every
journaled file, cuts anything written after the last journal line, and reports the
finished files in :attr:`LabelWriter.done` so they are skipped.

One run at a time: a writer holds an OS lock on ``OUT.lock`` (and ``SUMMARY.lock``)
until it finishes, fails or its process ends; a second run onto them refuses.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..io.csv_cells import read_cell, safe_cell
from ..io.files import FileLock, atomic_write, missing_folder, move_into_place
from ..io.journal import Journal
from .summary import UNCERTAIN, merge_segments, summarize

if TYPE_CHECKING:
    from .channel import ChannelResult

__all__ = ["LabelWriter", "OutputError", "OutputPaths", "check_folders", "label_fields",
           "label_rows", "output_paths", "segment_fields", "summary_fields", "summary_rows",
           "write_segments"]


class OutputError(Exception):
    """Outputs that cannot be written or resumed; one-line message."""


class OutputPaths(NamedTuple):
    """The files of one predict run whose labels CSV is ``labels``."""

    labels: str
    summary: str
    segments: str


def check_folders(paths: list[str]) -> None:
    """OutputError (one line) unless the folder of every non-empty path of ``paths``
    exists and is writable: a run must not label a whole archive and then fail to
    write."""
    for path in filter(None, paths):
        why = missing_folder(path)
        if why:
            raise OutputError(why)


def output_paths(labels: str) -> OutputPaths:
    """The labels CSV ``labels`` and its siblings, named after it: ``day1.csv`` ->
    ``day1.summary.csv`` and ``day1.segments.csv`` in the same folder."""
    stem = labels[:-4] if labels.lower().endswith(".csv") else labels
    return OutputPaths(labels, f"{stem}.summary.csv", f"{stem}.segments.csv")


def label_fields(labels: list[str]) -> list[str]:
    """Columns of labels.csv (and segments.csv, which adds ``windows``)."""
    return (["file", "channel", "start", "end", "label", "confidence"]
            + [f"p_{lab}" for lab in labels] + ["error"])


def label_rows(file: str, channel: str, result: ChannelResult,
               labels: list[str], min_confidence: float = 0.0) -> list[list]:
    """Rows of labels.csv for one channel: one per window (start and end in seconds,
    3 decimals; probabilities 4 decimals), or one row holding ``result.error``. A window
    whose top probability (``confidence``) is below ``min_confidence`` is labelled
    ``uncertain``; its probabilities are written as for any other."""
    fields = label_fields(labels)
    if result.error:
        return [_row(fields, file=file, channel=channel, error=result.error)]
    top = result.probs.argmax(axis=1) if len(result.probs) else np.zeros(0, int)
    return [_row(fields, file=file, channel=channel, start=f"{s:.3f}", end=f"{e:.3f}",
                 label=labels[k] if p[k] >= min_confidence else UNCERTAIN,
                 confidence=f"{p[k]:.4f}",
                 **{f"p_{lab}": f"{v:.4f}" for lab, v in zip(labels, p)})
            for s, e, k, p in zip(result.starts, result.ends, top, result.probs)]


def segment_fields(labels: list[str]) -> list[str]:
    """Columns of segments.csv: those of labels.csv but ``error``, then ``windows``."""
    return label_fields(labels)[:-1] + ["windows"]


def summary_fields(labels: list[str]) -> list[str]:
    """Columns of summary.csv."""
    return (["file", "channel", "seconds", "speech_seconds", "uncertain_seconds", "windows",
             "dominant"]
            + [f"share_{lab}" for lab in labels]
            + ["negative_start", "negative_end", "negative_score", "error"])


def summary_rows(file: str, channel: str, result: ChannelResult,
                 labels: list[str], min_confidence: float = 0.0) -> list[list]:
    """The row of summary.csv for one channel (:func:`serfast.calls.summary.summarize`
    with ``min_confidence``; seconds to 3 decimals, the negative stretch's bounds to 2,
    shares and score to 4), as a one-row list."""
    fields = summary_fields(labels)
    if result.error:
        return [_row(fields, file=file, channel=channel, error=result.error)]
    s = summarize(result.starts, result.ends, result.probs, result.regions, labels,
                  result.seconds, min_confidence)
    negative = ({"negative_start": f"{s.negative_start:.2f}",
                 "negative_end": f"{s.negative_end:.2f}",
                 "negative_score": f"{s.negative_score:.4f}"}
                if s.negative_start is not None else {})
    return [_row(fields, file=file, channel=channel, seconds=f"{result.seconds:.3f}",
                 speech_seconds=f"{s.speech_seconds:.3f}",
                 uncertain_seconds=f"{s.uncertain_seconds:.3f}", windows=s.windows,
                 dominant=s.dominant, **{f"share_{lab}": f"{s.shares[lab]:.4f}"
                                         for lab in labels}, **negative)]


#: Columns that hold text from the user (paths, labels, messages).
_TEXT = ("file", "channel", "label", "dominant", "error")


def _row(fields: list[str], **values) -> list:
    """``values`` in the order of ``fields``, text columns spreadsheet-safe; a column not
    given is empty."""
    return [safe_cell(values[name]) if name in _TEXT and name in values
            else values.get(name, "") for name in fields]


class LabelWriter:
    """Writes labels.csv and summary.csv as files finish; see the module docstring."""

    def __init__(self, out: str, summary: str, labels: list[str], fingerprint: dict,
                 resume: bool = False, segments: str = ""):
        self.out, self.summary, self.labels = out, summary, labels
        self.partial = {"labels": out + ".partial", "summary": summary + ".partial"}
        self.journal_path = out + ".journal"
        self.done: set[str] = set()
        self.files: dict = {}
        self.journal: Journal | None = None
        self.locks = [FileLock(p + ".lock") for p in dict.fromkeys((out, summary))]
        self._lock()
        try:
            self._open(fingerprint, resume, segments)
        except BaseException:
            self.abort()
            raise

    def _lock(self) -> None:
        for k, lock in enumerate(self.locks):
            try:
                held = lock.acquire()
            except FileExistsError as err:
                held, reason = False, str(err)
            except OSError as err:
                held, reason = False, f"cannot write {err.filename}: {err.strerror}"
            else:
                reason = (f"another serfast predict is writing {lock.path[:-5]} "
                          f"(it holds {lock.path})")
            if not held:
                for taken in self.locks[:k]:
                    taken.release()
                raise OutputError(reason)

    def _open(self, fingerprint: dict, resume: bool, segments: str) -> None:
        out, labels = self.out, self.labels
        if not resume:
            for path in dict.fromkeys((out, self.summary, segments)):
                if path and os.path.exists(path):
                    raise OutputError(f"{path} exists; choose another --out or delete it")
            if os.path.exists(self.journal_path):
                raise OutputError(f"{out} has an interrupted run: --resume continues it "
                                  f"(or delete {self.journal_path} to start again)")
        head = {"fingerprint": fingerprint}
        if resume and os.path.exists(self.journal_path):
            sizes = self._reopen(head)
        else:
            if resume and os.path.exists(out):
                raise OutputError(f"nothing to resume: {out} is complete")
            sizes = {}
            try:
                self.journal = Journal.create(self.journal_path, head)
            except OSError as err:
                raise OutputError(f"cannot write {err.filename}: {err.strerror}") from None
        try:
            self.files = {k: open(p, "r+" if k in sizes else "w", newline="", encoding="utf-8")
                          for k, p in self.partial.items()}
        except OSError as err:
            raise OutputError(f"cannot write {err.filename}: {err.strerror}") from None
        for key, f in self.files.items():
            if key in sizes:
                f.truncate(sizes[key])
                f.seek(sizes[key])
            else:
                fields = label_fields(labels) if key == "labels" else summary_fields(labels)
                csv.writer(f).writerow(fields)
        self.writers = {k: csv.writer(f) for k, f in self.files.items()}

    def _reopen(self, head: dict) -> dict[str, int]:
        actual = {k: os.path.getsize(p) if os.path.exists(p) else -1
                  for k, p in self.partial.items()}
        try:
            self.journal, entries = Journal.resume(
                self.journal_path, head, OutputError,
                f"{self._changed(head['fingerprint'])} changed since the interrupted run "
                f"(delete {self.journal_path} to restart)",
                usable=lambda e: all(e[k] <= actual[k] for k in actual))  # data is there
        except OSError as err:
            raise OutputError(f"cannot write {err.filename}: {err.strerror}") from None
        self.done.update(e["file"] for e in entries)
        sizes = {k: entries[-1][k] for k in actual} if entries else {}
        if not sizes:  # nothing durable: start the partial files again
            if min(actual.values()) < 0:
                return {}
            sizes = {k: self._header_size(p) for k, p in self.partial.items()}
        return sizes

    def _changed(self, fingerprint: dict) -> str:
        """What differs between ``fingerprint`` and the journal's, in words."""
        try:
            with open(self.journal_path, encoding="utf-8") as fh:
                stored = json.loads(fh.readline())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            return "the model or the options"
        now = json.loads(json.dumps(fingerprint))
        names = {"model": "the model", "archive": "the archive's list of files"}
        what = [names.get(k, "the options") for k in now if stored.get(k) != now[k]]
        return " and ".join(dict.fromkeys(what)) or "the model or the options"

    @staticmethod
    def _header_size(path: str) -> int:
        with open(path, "rb") as fh:
            return len(fh.readline())

    def write(self, file: str, window_rows: list[list], channel_rows: list[list]) -> None:
        """Append one file's rows of labels.csv (``window_rows``) and of summary.csv
        (``channel_rows``), make them durable, then journal the file."""
        self.writers["labels"].writerows(window_rows)
        self.writers["summary"].writerows(channel_rows)
        sizes = {}
        for key, f in self.files.items():
            f.flush()
            os.fsync(f.fileno())
            sizes[key] = os.fstat(f.fileno()).st_size
        self.journal.append({"file": file, **sizes})
        self.done.add(file)

    def finish(self, segments: str = "") -> None:
        """Close, move the partial files into place, write ``segments`` if asked, and
        release the locks."""
        try:
            for f in self.files.values():
                f.close()
            move_into_place(self.partial["labels"], self.out)
            move_into_place(self.partial["summary"], self.summary)
            self.journal.remove()
            if segments:
                write_segments(self.out, segments, self.labels)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the files and release the locks, leaving the partial files and the
        journal for a resumed run."""
        for f in self.files.values():
            f.close()
        if self.journal is not None:
            self.journal.close()
        for lock in self.locks:
            lock.release()


def write_segments(labels_csv: str, out: str, labels: list[str]) -> int:
    """Merge the windows of ``labels_csv`` into segments (see
    :func:`serfast.calls.summary.merge_segments`), written to ``out``; returns the count."""
    probs = [f"p_{lab}" for lab in labels]
    fields = segment_fields(labels)
    count = 0
    with open(labels_csv, newline="", encoding="utf-8") as src, \
            atomic_write(out, "w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        writer.writerow(fields)
        run: list[dict] = []
        for row in itertools.chain(csv.DictReader(src), [None]):
            key = None if row is None else (row["file"], row["channel"])
            if run and key != (run[0]["file"], run[0]["channel"]):
                for seg in merge_segments(run, probs):
                    writer.writerow(_row(
                        fields, file=run[0]["file"], channel=run[0]["channel"],
                        start=f"{seg['start']:.3f}", end=f"{seg['end']:.3f}",
                        label=seg["label"], confidence=f"{seg['confidence']:.4f}",
                        windows=seg["windows"], **{p: f"{seg[p]:.4f}" for p in probs}))
                    count += 1
                run = []
            if row is not None and not row["error"]:
                run.append({"file": read_cell(row["file"]),
                            "channel": read_cell(row["channel"]),
                            "start": float(row["start"]), "end": float(row["end"]),
                            "label": read_cell(row["label"]),
                            "confidence": float(row["confidence"]),
                            **{p: float(row[p]) for p in probs}})
    return count
