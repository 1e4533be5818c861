"""The archive report: one self-contained HTML page built from predict's CSV outputs.

The page needs no server and fetches nothing: its CSS and JavaScript are inline, its data
is one JSON block. Per call it carries the summary row of each channel and the channel's
windows, packed in base64 (per channel: window starts as uint32 centiseconds, lengths as
uint16 centiseconds, then each window's probabilities as uint8, ``round(p * 255)``), so a
1,000-call archive stays a few megabytes. The page draws the timeline of the call on show.

Archive-wide shares weight each channel's ``share_*`` by its speech seconds:
``share(e, c) = sum(share_e * speech_seconds) / sum(speech_seconds)`` over the files whose
channel ``c`` has speech.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..io.corpus import is_url
from ..io.csv_cells import read_cell
from ..io.files import missing_folder
from .labels import label_fields, output_paths, summary_fields
from .summary import NEGATIVE

__all__ = ["ReportError", "PredictOutputs", "ReportInfo", "find_outputs", "read_results",
           "channel_titles", "display_names", "audio_href", "pack_windows", "unpack_windows",
           "negative_runs", "write_report", "DEFAULT_CHANNELS"]

#: Channel names of predict's outputs -> titles on the page (agent 0, customer 1).
DEFAULT_CHANNELS = ("agent", "customer")
#: Negative runs listed per channel (the longest apart from its most negative stretch).
RUNS_PER_CHANNEL = 3
#: Marks a page this module wrote; only such a page is ever overwritten.
GENERATOR = "serfast report"


class ReportError(Exception):
    """Results that cannot be read or a page that cannot be written; one-line message."""


@dataclass(frozen=True)
class PredictOutputs:
    """The CSVs of one ``serfast predict`` run."""

    labels: str
    summary: str


@dataclass(frozen=True)
class ReportInfo:
    """What :func:`write_report` wrote."""

    path: str
    calls: int
    windows: int
    bytes: int
    seconds: float


def _header(path: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _emotions(header: list[str], prefix: str) -> list[str] | None:
    """The emotions of a labels (``p_``) or summary (``share_``) header, or None."""
    labels = [h[len(prefix):] for h in header if h.startswith(prefix)]
    fields = label_fields(labels) if prefix == "p_" else summary_fields(labels)
    return labels if labels and header == fields else None


def find_outputs(path: str) -> PredictOutputs:
    """The labels and summary CSVs of a predict run: ``path`` is its labels CSV (``--out``)
    or the folder holding it. Files are recognised by the columns predict writes; of
    several summaries beside the labels, ``STEM.summary.csv``, ``STEM_summary.csv`` and
    ``summary.csv`` are preferred in that order (STEM: the labels file's name)."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise ReportError(f"not found: {path}")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    csvs = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.lower().endswith(".csv"))
    if os.path.isdir(path):
        found = [p for p in csvs if _emotions(_header(p), "p_")]
        if len(found) != 1:
            what = "no labels CSV" if not found else f"{len(found)} labels CSVs"
            raise ReportError(f"{what} of serfast predict in {path}; give the labels CSV")
        labels = found[0]
    elif _emotions(_header(path), "p_"):
        labels = path
    else:
        raise ReportError(f"{path} is not a labels CSV of serfast predict")
    emotions = _emotions(_header(labels), "p_")
    summaries = [p for p in csvs if _emotions(_header(p), "share_") == emotions]
    stem = os.path.splitext(os.path.basename(labels))[0]
    preferred = [output_paths(labels).summary] + [
        os.path.join(folder, n) for n in (f"{stem}_summary.csv", "summary.csv")]
    chosen = [p for p in preferred if p in summaries][:1] or \
        (summaries if len(summaries) == 1 else [])
    if not chosen:
        what = "no summary CSV" if not summaries else f"{len(summaries)} summary CSVs"
        raise ReportError(f"{what} of serfast predict beside {labels}")
    return PredictOutputs(labels, chosen[0])


def channel_titles(names: list[str], titles: tuple[str, ...] = DEFAULT_CHANNELS) -> dict:
    """Channel name ("0", "1", "mix") -> title: channel k gets ``titles[k]`` when given;
    with the default titles, a lone channel 0 (mono recordings: clips, or a mixed call)
    is the "speaker", not the agent."""
    if titles == DEFAULT_CHANNELS and [n for n in names if n.isdigit()] == ["0"]:
        titles = ("speaker",)
    out = {}
    for name in names:
        k = int(name) if name.isdigit() else -1
        out[name] = titles[k] if 0 <= k < len(titles) else \
            (f"channel {name}" if name.isdigit() else name or "file")
    return out


def audio_href(file: str, page: str) -> str:
    """URL of ``file`` relative to the folder of the page ``page`` (percent-encoded)."""
    base = os.path.dirname(os.path.abspath(page))
    try:
        rel = os.path.relpath(os.path.abspath(file), base)
    except ValueError:  # another drive
        return "file:///" + urllib.parse.quote(os.path.abspath(file).replace(os.sep, "/"))
    return "/".join(urllib.parse.quote(part) for part in rel.split(os.sep))


def pack_windows(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray) -> str:
    """Base64 of one channel's windows (see the module docstring); ``starts``/``ends``
    (n,) s, ``probs`` (n, emotions) in [0, 1]."""
    cs = np.round(np.asarray(starts, np.float64) * 100)
    length = np.round((np.asarray(ends, np.float64) - np.asarray(starts, np.float64)) * 100)
    q = np.round(np.clip(probs, 0, 1) * 255).astype("<u1")
    raw = (np.clip(cs, 0, 2**32 - 1).astype("<u4").tobytes()
           + np.clip(length, 0, 2**16 - 1).astype("<u2").tobytes() + q.tobytes())
    return base64.b64encode(raw).decode("ascii")


def unpack_windows(text: str, emotions: int):
    """Inverse of :func:`pack_windows`: starts (n,) s, ends (n,) s, probs (n, emotions)."""
    raw = base64.b64decode(text)
    n = len(raw) // (6 + emotions)
    starts = np.frombuffer(raw, "<u4", n) / 100
    ends = starts + np.frombuffer(raw, "<u2", n, 4 * n) / 100
    probs = np.frombuffer(raw, "<u1", n * emotions, 6 * n).reshape(n, emotions) / 255
    return starts, ends, probs


def negative_runs(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray,
                  labels: list[str]) -> list[tuple[float, float, float]]:
    """Runs of overlapping or touching windows (in time order) whose most likely emotion
    is negative (:data:`serfast.calls.summary.NEGATIVE`): (start s, end s, mean
    negativity), negativity being the summed probability of the negative emotions."""
    negative = np.array([lab in NEGATIVE for lab in labels])
    if not len(starts) or not negative.any():
        return []
    is_neg = negative[probs.argmax(axis=1)]
    negativity = probs[:, negative].sum(axis=1)
    runs, first, reach = [], None, 0.0
    for i in range(len(starts) + 1):
        if first is not None and (i == len(starts) or not is_neg[i] or starts[i] > reach + 1e-6):
            runs.append((float(starts[first]), float(reach),
                         float(negativity[first:i].mean())))
            first = None
        if i < len(starts) and is_neg[i]:
            if first is None:
                first, reach = i, float(ends[i])
            else:
                reach = max(reach, float(ends[i]))
    return runs


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def read_results(outputs: PredictOutputs, page: str,
                 titles: tuple[str, ...] = DEFAULT_CHANNELS) -> dict:
    """The page's data: ``labels`` (emotions), ``channels`` (name -> title), ``calls`` (one
    dict per file in the summary's order, channels in order) and ``windows`` (count)."""
    emotions = _emotions(_header(outputs.labels), "p_")
    calls: dict[str, dict] = {}
    try:
        with open(outputs.summary, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for key in ("file", "channel", "dominant", "error"):
                    row[key] = read_cell(row[key])
                call = calls.setdefault(row["file"], {
                    "file": row["file"], "name": os.path.basename(row["file"]),
                    "audio": audio_href(row["file"], page), "seconds": 0.0, "channels": []})
                seconds = _float(row["seconds"]) or 0.0
                call["seconds"] = max(call["seconds"], seconds)
                call["channels"].append({
                    "name": row["channel"], "seconds": seconds,
                    "speech": _float(row["speech_seconds"]) or 0.0,
                    "windows": int(row["windows"] or 0), "dominant": row["dominant"],
                    "shares": [_float(row[f"share_{e}"]) or 0.0 for e in emotions],
                    "negative": None if row["negative_start"] == "" else
                    [float(row["negative_start"]), float(row["negative_end"]),
                     float(row["negative_score"])],
                    "error": row["error"], "runs": [], "packed": ""})
        windows = _attach_windows(outputs.labels, calls, emotions)
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError) as err:
        raise ReportError(f"cannot read the results: {' '.join(str(err).split())}") from None
    for path, name in display_names(list(calls)).items():
        calls[path]["name"] = name
    names = list(dict.fromkeys(c["name"] for call in calls.values() for c in call["channels"]))
    return {"labels": emotions, "channels": channel_titles(names, titles),
            "calls": list(calls.values()), "windows": windows}


def display_names(files: list[str]) -> dict[str, str]:
    """File -> the name the page shows: its base name, or, where two files share one (the
    same clip name in several speakers' folders), every file's path below the folder they
    all share (URLs: whole)."""
    bases = [os.path.basename(f) for f in files]
    if len(set(bases)) == len(bases):
        return dict(zip(files, bases))
    local = [f for f in files if not is_url(f)]
    root = os.path.commonpath([os.path.dirname(f) for f in local]) if local else ""
    return {f: f if is_url(f) else os.path.relpath(f, root) for f in files}


def _attach_windows(labels_csv: str, calls: dict, emotions: list[str]) -> int:
    """Pack the windows of each file and channel of ``labels_csv`` into ``calls``."""
    columns = [f"p_{e}" for e in emotions]
    count = 0
    key, rows = None, []

    def flush():
        call = calls.get(key[0]) if key else None
        channel = next((c for c in call["channels"] if c["name"] == key[1]), None) \
            if call else None
        if channel is None or not rows:
            return
        a = np.array(rows, np.float64)
        starts, ends, probs = a[:, 0], a[:, 1], a[:, 2:]
        channel["packed"] = pack_windows(starts, ends, probs)
        worst = channel["negative"] or [np.inf, -np.inf]
        runs = [r for r in negative_runs(starts, ends, probs, emotions)
                if r[1] <= worst[0] or r[0] >= worst[1]]  # apart from the worst stretch
        channel["runs"] = sorted(runs, key=lambda r: r[0] - r[1])[:RUNS_PER_CHANNEL]

    with open(labels_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            here = (read_cell(row["file"]), read_cell(row["channel"]))
            if here != key:
                flush()
                key, rows = here, []
            if not row["error"]:
                rows.append([float(row["start"]), float(row["end"])]
                            + [float(row[c]) for c in columns])
                count += 1
        flush()
    return count


def _script_json(data) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(a, b)
    return text


def _compact(data: dict) -> dict:
    """The data as the page reads it: short keys, rounded numbers."""
    r = lambda x, n=3: None if x is None else round(x, n)  # noqa: E731
    calls = []
    for call in data["calls"]:
        calls.append({"f": call["file"], "n": call["name"], "a": call["audio"],
                      "s": r(call["seconds"], 2), "c": [{
                          "c": ch["name"], "sp": r(ch["speech"], 2), "w": ch["windows"],
                          "d": ch["dominant"], "sh": [r(x, 4) for x in ch["shares"]],
                          "ng": ch["negative"] and [r(ch["negative"][0], 2),
                                                    r(ch["negative"][1], 2),
                                                    r(ch["negative"][2], 4)],
                          "ru": [[r(a, 2), r(b, 2), r(v, 3)] for a, b, v in ch["runs"]],
                          "e": ch["error"], "t": ch["packed"]} for ch in call["channels"]]})
    names = ", ".join(f"{t} = channel {n}" if n.isdigit() else t
                      for n, t in data["channels"].items())
    return {"labels": data["labels"], "channels": data["channels"], "calls": calls,
            "negative": [e for e in data["labels"] if e in NEGATIVE],
            "channels_note": names, "windows_note": f"{data['windows']:,} labelled windows"}


def _refuse_foreign(path: str) -> None:
    """Raise unless ``path`` is absent or a page this module wrote."""
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(2048)
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror}") from None
    if f'<meta name="generator" content="{GENERATOR}">' not in head:
        raise ReportError(f"{path} exists and is not a serfast report; choose another name")


def write_report(results: str, page: str, titles: tuple[str, ...] = DEFAULT_CHANNELS,
                 title: str = "") -> ReportInfo:
    """Write the report of the predict run at ``results`` (see :func:`find_outputs`) to
    ``page``; ``titles`` name channels 0, 1, … . An earlier report at ``page`` is replaced,
    any other file is refused."""
    start = time.perf_counter()
    why = missing_folder(page)
    if why:
        raise ReportError(why)
    page = os.path.abspath(page)
    _refuse_foreign(page)
    outputs = find_outputs(results)
    data = read_results(outputs, page, titles)
    template = resources.files(__package__).joinpath("report_page.html").read_text("utf-8")
    folder, name = os.path.split(outputs.labels)
    title = title or f"Call archive: {os.path.basename(folder)}/{name}"
    head, tail = (part.replace("{{generator}}", GENERATOR)
                  .replace("{{title}}", html.escape(title))
                  for part in template.split("{{data}}"))
    text = head + _script_json(_compact(data)) + tail
    tmp = page + ".partial"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, page)
    except OSError as err:
        raise ReportError(f"cannot write {err.filename}: {err.strerror}") from None
    return ReportInfo(page, len(data["calls"]), data["windows"], os.path.getsize(page),
                      time.perf_counter() - start)
