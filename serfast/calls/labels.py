"""The outputs of ``serfast predict``: labels.csv, summary.csv (and segments.csv).

Rows are written file by file, in archive order, to ``OUT.partial`` and
``SUMMARY.partial``; after a file's rows are flushed and synced, one JSON line in
``OUT.journal`` records the file and the byte length of both partial files. Nothing
exists at ``OUT`` until :meth:`LabelWriter.finish` renames the partial files.
``resume=True`` keeps every journaled file, cuts anything written after the last journal
line, and reports the finished files in :attr:`LabelWriter.done` so they are skipped.
"""

from __future__ import annotations

import csv
import itertools
import json
import os

from ..io.journal import resume_journal
from .summary import merge_segments


class OutputError(Exception):
    """Outputs that cannot be written or resumed; one-line message."""


def label_fields(labels: list[str]) -> list[str]:
    """Columns of labels.csv (and segments.csv, which adds ``windows``)."""
    return (["file", "channel", "start", "end", "label", "confidence"]
            + [f"p_{lab}" for lab in labels] + ["error"])


def summary_fields(labels: list[str]) -> list[str]:
    """Columns of summary.csv."""
    return (["file", "channel", "seconds", "speech_seconds", "windows", "dominant"]
            + [f"share_{lab}" for lab in labels]
            + ["negative_start", "negative_end", "negative_score", "error"])


class LabelWriter:
    """Writes labels.csv and summary.csv as files finish; see the module docstring."""

    def __init__(self, out: str, summary: str, labels: list[str], fingerprint: dict,
                 resume: bool = False):
        self.out, self.summary, self.labels = out, summary, labels
        self.partial = {"labels": out + ".partial", "summary": summary + ".partial"}
        self.journal_path = out + ".journal"
        self.done: set[str] = set()
        if os.path.exists(out) and not resume:
            raise OutputError(f"{out} exists; choose another --out or delete it")
        head = {"fingerprint": fingerprint}
        if resume and os.path.exists(self.journal_path):
            sizes = self._reopen(head)
        else:
            if resume and os.path.exists(out):
                raise OutputError(f"nothing to resume: {out} is complete")
            sizes = {}
            self._write_journal([json.dumps(head)])
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
        self.journal = open(self.journal_path, "a", encoding="utf-8")

    def _write_journal(self, lines: list[str]) -> None:
        try:
            with open(self.journal_path, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        except OSError as err:
            raise OutputError(f"cannot write {err.filename}: {err.strerror}") from None

    def _reopen(self, head: dict) -> dict[str, int]:
        actual = {k: os.path.getsize(p) if os.path.exists(p) else -1
                  for k, p in self.partial.items()}
        try:
            entries = resume_journal(
                self.journal_path, head, OutputError,
                "the model or the options changed since the interrupted run "
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

    @staticmethod
    def _header_size(path: str) -> int:
        with open(path, "rb") as fh:
            return len(fh.readline())

    def write(self, file: str, label_rows: list[list], summary_rows: list[list]) -> None:
        """Append one file's rows, make them durable, then journal the file."""
        self.writers["labels"].writerows(label_rows)
        self.writers["summary"].writerows(summary_rows)
        sizes = {}
        for key, f in self.files.items():
            f.flush()
            os.fsync(f.fileno())
            sizes[key] = os.fstat(f.fileno()).st_size
        self.journal.write(json.dumps({"file": file, **sizes}) + "\n")
        self.journal.flush()
        self.done.add(file)

    def finish(self, segments: str = "") -> None:
        """Close, move the partial files into place, and write ``segments`` if asked."""
        for f in self.files.values():
            f.close()
        self.journal.close()
        os.replace(self.partial["labels"], self.out)
        os.replace(self.partial["summary"], self.summary)
        os.remove(self.journal_path)
        if segments:
            write_segments(self.out, segments, self.labels)


def write_segments(labels_csv: str, out: str, labels: list[str]) -> int:
    """Merge the windows of ``labels_csv`` into segments (see
    :func:`serfast.summary.merge_segments`), written to ``out``; returns the count."""
    probs = [f"p_{lab}" for lab in labels]
    count = 0
    tmp = out + ".partial"
    with open(labels_csv, newline="", encoding="utf-8") as src, \
            open(tmp, "w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        writer.writerow(label_fields(labels)[:-1] + ["windows"])
        run: list[dict] = []
        for row in itertools.chain(csv.DictReader(src), [None]):
            key = None if row is None else (row["file"], row["channel"])
            if run and key != (run[0]["file"], run[0]["channel"]):
                for seg in merge_segments(run, probs):
                    writer.writerow([run[0]["file"], run[0]["channel"], f"{seg['start']:.3f}",
                                     f"{seg['end']:.3f}", seg["label"],
                                     f"{seg['confidence']:.4f}"]
                                    + [f"{seg[p]:.4f}" for p in probs] + [seg["windows"]])
                    count += 1
                run = []
            if row is not None and not row["error"]:
                run.append({"file": row["file"], "channel": row["channel"],
                            "start": float(row["start"]), "end": float(row["end"]),
                            "label": row["label"], "confidence": float(row["confidence"]),
                            **{p: float(row[p]) for p in probs}})
    os.replace(tmp, out)
    return count
