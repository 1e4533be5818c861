"""The training report of a model DIR: ``report.json`` (every number), ``report.md`` (for a
person) and PNGs: confusion matrix, per-fold accuracy, training curves."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from ..io.csv_cells import safe_row
from ..io.files import atomic_write

__all__ = ["compare_table", "confusion_table", "loco_table", "markdown", "write_predictions",
           "write_report"]


def _pct(summary: dict, key: str) -> str:
    return f"{100 * summary[key]['mean']:.1f} ± {100 * summary[key]['std']:.1f} %"


def _member_names(report: dict, n_members: int) -> list[str]:
    """What each training history of one fit is: the serfast ensemble's members (statistics
    MLPs first, then frame CNNs) or the method's network."""
    opts = report["options"]
    if opts["network"] != "serfast":
        return [f"method network ({opts['extractor']} + {opts['classifier']})"] * n_members
    ensemble = opts["ensemble"]
    return [f"statistics MLP {j + 1}" if j < ensemble else f"frame CNN {j - ensemble + 1}"
            for j in range(n_members)]


def _plots(model_dir: str, report: dict) -> list[str]:
    """Write the PNGs; returns their file names. Uses matplotlib's Figure directly, so the
    caller's pyplot backend and figures are left alone."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    cv, labels, names = report["cv"], report["labels"], []
    cm = np.asarray(cv["pooled"]["confusion"], dtype=float)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, int(v), ha="center", va="center",
                color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted",
           ylabel="true", title="Confusion matrix (all folds)")
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    names.append(_save(fig, model_dir, "confusion.png"))

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    acc = [f["accuracy"] for f in cv["folds"]]
    folds = range(1, len(acc) + 1)
    ax.bar(folds, acc, color="tab:blue", alpha=0.8, zorder=1)
    ax.axhline(np.mean(acc), color="black", linestyle="--", linewidth=1.5, zorder=3,
               label=f"mean {np.mean(acc):.3f}")
    ax.set_xticks(list(folds))
    ax.set(xlabel="fold", ylabel="accuracy", ylim=(0, 1.15), title="Accuracy per fold")
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(loc="upper right", framealpha=1)
    names.append(_save(fig, model_dir, "folds.png"))

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    styles = {}
    for f, members in enumerate(cv["histories"]):
        for member, h in zip(_member_names(report, len(members)), members):
            style = styles.setdefault(member.rstrip("0123456789 "),
                                      ["-", "--", ":", "-."][len(styles) % 4])
            ax.plot(range(1, len(h["loss"]) + 1), h["loss"], color=f"C{f % 10}", alpha=0.7,
                    linestyle=style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="training loss",
           title="Training curves: colour = fold, line = network")
    handles = ([Line2D([], [], color=f"C{f % 10}", label=f"fold {f + 1}")
                for f in range(len(cv["histories"]))]
               + [Line2D([], [], color="black", linestyle=s, label=name)
                  for name, s in styles.items()])
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    names.append(_save(fig, model_dir, "curves.png"))
    return names


def _save(fig, model_dir: str, name: str) -> str:
    fig.tight_layout()
    fig.savefig(os.path.join(model_dir, name), dpi=100)
    return name


def markdown(report: dict, pictures: list[str]) -> str:
    """The report as Markdown text."""
    opts = report["options"]
    lines = [f"# serfast model: {', '.join(report['labels'])}", "",
             f"Stores: {', '.join(report['stores'])}  ",
             f"Clips: {report['clips']} from {report['speakers']} speakers "
             f"(+{report['augmented_rows']} augmented rows; {report['left_out']} clips of "
             f"other classes left out)  ",
             f"Network: {opts['network']}"
             + (f" ({opts['extractor']} + {opts['classifier']})" if opts["network"] == "method"
                else f" (ensemble {opts['ensemble']})")
             + f", seed {opts['seed']}, class weighting {'on' if opts['class_weight'] else 'off'}",
             ""]
    if "cv" in report:
        cv = report["cv"]
        s = cv["summary"]
        lines += [f"## Cross-validation: {opts['cv']} folds of whole speakers "
                  f"({report['cv_seconds']:.0f} s)", "",
                  f"- accuracy **{_pct(s, 'accuracy')}**, UAR **{_pct(s, 'uar')}**",
                  f"- macro precision {_pct(s, 'macro_precision')}, recall "
                  f"{_pct(s, 'macro_recall')}, F1 {_pct(s, 'macro_f1')}",
                  f"- expected calibration error {cv['pooled']['ece']:.3f} (all folds pooled; "
                  f"{cv['pooled']['ece_bins']} equal-width confidence bins); "
                  f"{cv['pooled']['ece_calibrated']:.3f} with each fold at the temperature "
                  f"fitted on the other folds; the saved model's temperature, fitted on "
                  f"every fold: {cv['pooled']['temperature']:.3f}", "",
                  "| fold | speakers | clips | accuracy | UAR | macro F1 | gender acc. |",
                  "|---|---|---|---|---|---|---|"]
        for f in cv["folds"]:
            g = "–" if f["gender_accuracy"] is None else f"{f['gender_accuracy']:.3f}"
            lines.append(f"| {f['fold'] + 1} | {', '.join(f['speakers'])} | {f['n']} | "
                         f"{f['accuracy']:.3f} | {f['uar']:.3f} | {f['macro_f1']:.3f} | {g} |")
        lines += ["", "Per class (all folds pooled):", "",
                  "| class | precision | recall | F1 | clips |", "|---|---|---|---|---|"]
        for lab, c in cv["pooled"]["per_class"].items():
            lines.append(f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} "
                         f"| {c['support']} |")
        lines += ["", "Confusion matrix (rows true, columns predicted):", ""]
        lines += confusion_table(report["labels"], cv["pooled"]["confusion"])
        lines += [""] + [f"![{p}]({p})" for p in pictures] + [""]
    if "loco" in report:
        lines += [f"## Leave one corpus out ({report['loco_seconds']:.0f} s)", ""]
        lines += loco_table(report["loco"]) + [""]
        for c in report["loco"]["corpora"]:
            lines += [f"Confusion matrix of {c['corpus']} (rows true, columns predicted; "
                      f"its classes only):", ""]
            lines += confusion_table(report["labels"], c["confusion"], c["classes"]) + [""]
    if "compare" in report:
        lines += compare_table(report["compare"]) + [""]
    return "\n".join(lines)


def confusion_table(labels: list[str], confusion: list[list[int]],
                    keep: list[str] | None = None) -> list[str]:
    """A confusion matrix as a Markdown table (rows true, columns predicted), restricted
    to the classes ``keep`` (default every class)."""
    keep = list(labels) if keep is None else keep
    index = [labels.index(lab) for lab in keep]
    lines = ["| | " + " | ".join(keep) + " |", "|---" * (len(keep) + 1) + "|"]
    for i in index:
        lines.append(f"| {labels[i]} | " + " | ".join(str(confusion[i][j]) for j in index)
                     + " |")
    return lines


def loco_table(loco: dict) -> list[str]:
    """Leave-one-corpus-out scores as a Markdown table: a row per held-out corpus, then
    the unweighted mean over corpora. Each corpus is scored on its own classes."""
    lines = ["| held-out corpus | clips | speakers | classes | accuracy | UAR | macro F1 | "
             "ECE | ECE, calibrated | accuracy, any class |", "|---" * 10 + "|"]
    for c in loco["corpora"]:
        untrained = f" (never trained: {', '.join(c['untrained'])})" if c["untrained"] else ""
        lines.append(f"| {c['corpus']} | {c['n']} | {c['speakers']} | "
                     f"{', '.join(c['classes'])}{untrained} | {c['accuracy']:.3f} | "
                     f"{c['uar']:.3f} | {c['macro_f1']:.3f} | {c['ece']:.3f} | "
                     f"{c['ece_calibrated']:.3f} | {c['unrestricted_accuracy']:.3f} |")
    s = loco["summary"]
    lines.append(f"| **mean of {len(loco['corpora'])}** | | | | {s['accuracy']['mean']:.3f} | "
                 f"**{s['uar']['mean']:.3f}** | {s['macro_f1']['mean']:.3f} | "
                 f"{s['ece']['mean']:.3f} | {loco['ece_calibrated']:.3f} | |")
    lines += ["", f"Each corpus is scored on the classes it has (the most probable of them); "
                  f"ECE over {loco['ece_bins']} equal-width confidence bins of those "
                  f"renormalised probabilities, calibrated: at the temperature fitted on the "
                  f"other corpora; the last column lets the model pick any class. The saved "
                  f"model's temperature, fitted on every held-out corpus: "
                  f"{loco['temperature']:.3f}."]
    return lines


def _cell(row: dict | None) -> list[str]:
    if row is None:
        return ["–", "–", "–"]
    star = "*" if row.get("note") else ""
    return [_pct(row, "accuracy") + star,
            f"{row['uar']['mean']:.3f} ± {row['uar']['std']:.3f}{star}",
            f"{row['seconds']:.0f} s"]


def compare_table(cells: list[dict]) -> list[str]:
    """The ``--compare`` cells as one Markdown table: a row per model, accuracy / UAR /
    CV time without and with augmented rows; cells stopped early are starred and
    explained below the table."""
    augmented = any(c["augmented"] for c in cells)
    names = list(dict.fromkeys(c["name"] for c in cells))
    by = {(c["name"], c["augmented"]): c for c in cells}
    header = ["model", "accuracy", "UAR", "CV time"]
    if augmented:
        header = ["model", "accuracy, no aug.", "UAR, no aug.", "CV time",
                  "accuracy, + aug.", "UAR, + aug.", "CV time"]
    lines = ["## Comparison under the same speaker folds", "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name in names:
        row = _cell(by.get((name, False)))
        if augmented:
            row += _cell(by.get((name, True)))
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    notes = [f"{c['name']}, {'with' if c['augmented'] else 'without'} augmentation: "
             f"{c['note']}" for c in cells if c.get("note")]
    if notes:
        lines += [""] + [f"\\* {n}; the mean is over the folds run." for n in notes]
    return lines


def write_report(model_dir: str, report: dict) -> None:
    """Write report.json, the PNGs (with cross-validation) and report.md into model_dir."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    pictures = _plots(model_dir, report) if "cv" in report else []
    with open(os.path.join(model_dir, "report.md"), "w", encoding="utf-8") as fh:
        fh.write(markdown(report, pictures))


def write_predictions(path: str, rows: list[dict], labels: list[str]) -> None:
    """Write ``evaluate``'s per-clip predictions (``rows`` of path, true, predicted,
    confidence, p_<label>) as a CSV at ``path``, atomically; text cells that a
    spreadsheet would run as formulas are quoted (``serfast.io.csv_cells``)."""
    fields = ["path", "true", "predicted", "confidence"] + [f"p_{lab}" for lab in labels]
    with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        writer.writerows(safe_row([r[f] for f in fields]) for r in rows)
