"""The README's first hour: `serfast demo` runs every stage on embedded audio, keeps to its
own folder and says what its numbers mean; the first run says the kernels compile; the
package ships its licence; the GPU checks script fails when a check fails."""

import csv
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from serfast.demo import MARKER, STYLES, DemoError, prepare_demo_folder, utterances_right
from serfast_cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_the_whole_pipeline(tmp_path):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "extracted 144 of 144 rows (0 failed)" in result.output
    assert "synthetic clips are far easier than recorded speech" in result.output
    right = [line for line in result.output.splitlines() if line.startswith("4/4")][0]
    assert " utterances right (" in right
    for name in ("features.npy", "features.frames.npy", "model/model.json",
                 "model/report.md", "labels.csv", "labels.summary.csv", "plots/call.png",
                 MARKER):
        assert (folder / name).exists(), name
    with open(folder / "labels.summary.csv", newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["channel"] for r in summary] == ["0", "1"]
    assert all(float(r["speech_seconds"]) > 5 and r["dominant"] in STYLES for r in summary)


def test_demo_folder_holding_other_files_is_refused_and_kept(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mine.wav").write_bytes(b"RIFF")
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "holds files the demo did not write" in result.output
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    assert (tmp_path / "corpus" / "mine.wav").exists()
    assert not (tmp_path / MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DemoError, match="not a folder"):
        prepare_demo_folder(str(tmp_path / "file"))


def test_an_earlier_demo_folder_loses_only_the_demo_files(tmp_path):
    folder = tmp_path / "demo"
    prepare_demo_folder(str(folder))  # a new folder: made and marked
    assert os.listdir(folder) == [MARKER]
    for name in ("corpus/Actor_01", "model", "plots", "calls"):
        (folder / name).mkdir(parents=True)
    for name in ("features.npy", "features.csv", "labels.csv", "labels.summary.csv",
                 "corpus/Actor_01/a.wav"):
        (folder / name).write_text("demo")
    prepare_demo_folder(str(folder))
    assert os.listdir(folder) == [MARKER]
    (folder / "notes.txt").write_text("the user's")  # added by the user since
    with pytest.raises(DemoError, match="notes.txt"):
        prepare_demo_folder(str(folder))
    assert (folder / "notes.txt").exists()


def test_utterances_right_scores_the_call_by_its_windows(tmp_path):
    labels = ["happy", "sad"]
    truth = [(0, 1.0, 3.0, "happy"), (1, 2.0, 4.0, "sad"), (0, 5.0, 7.0, "sad"),
             (1, 8.0, 9.0, "happy")]
    rows = [("0", 1.0, 2.5, 0.9), ("0", 2.0, 3.5, 0.6),  # happy: right
            ("1", 2.0, 4.0, 0.2),  # sad: right
            ("0", 4.5, 6.0, 0.7), ("0", 6.0, 7.0, 0.4),  # happy 0.7 + 0.4 > sad 0.3 + 0.6: wrong
            ("1", 1.0, 2.0, 0.9)]  # touches no utterance; the last one has no window: wrong
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "channel", "start", "end", "label", "confidence", "p_happy",
                    "p_sad", "error"])
        w.writerow(["/call.wav", "", "", "", "", "", "", "", "cannot decode"])
        for ch, a, b, p in rows:
            w.writerow(["/call.wav", ch, a, b, labels[p < 0.5], max(p, 1 - p), p, 1 - p, ""])
    assert utterances_right(str(path), truth) == 2


@pytest.mark.parametrize("feature_set", ["seed", "all"])
def test_first_run_on_a_cold_kernel_cache_says_it_compiles(tmp_path, feature_set):
    """A fresh Numba cache folder: the set's kernels are not cached, warm_kernels says so
    and compiles them; the next process finds them cached and says nothing."""
    code = ("from serfast_cli.progress import kernels_cached, warm_kernels\n"
            "from serfast.features.spec import FeatureSpec\n"
            f"spec = FeatureSpec(name={feature_set!r})\n"
            "print('cached', kernels_cached(spec))\n"
            "print('seconds', warm_kernels(lambda line: print('said', line), spec))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    cold = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert cold.returncode == 0, cold.stderr
    lines = cold.stdout.splitlines()
    assert lines[0] == "cached False"
    assert lines[1] == "said compiling feature kernels (once per machine)…"
    assert lines[2].startswith("said compiled in ") and float(lines[3].split()[1]) > 0
    warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert warm.stdout.splitlines() == ["cached True", "seconds None"], warm.stderr


def test_progress_shows_audio_in_a_fitting_unit_and_counts_as_integers():
    from serfast_cli.progress import ProgressLine

    audio = ProgressLine(False, unit="audio")
    assert audio.line(30, 45, 0, 2).startswith("30.0/45.0 s of audio 15.0x real time")
    assert audio.line(90, 600, 0, 3).startswith("1.5/10.0 min of audio 30.0x real time")
    assert audio.line(3600, 36000, 1, 60).startswith("1.0/10.0 h of audio 60.0x real time")
    clips = ProgressLine(False).line(1200, 5000, 1234, 10)
    assert clips.startswith("1,200/5,000 clips 120.0 clips/s") and "failed 1,234" in clips


def test_the_package_ships_its_mit_licence():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY" in text
    meta = importlib.metadata.metadata("serfast")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    assert "serfast-demo/" in (ROOT / ".gitignore").read_text().split()


def test_gpu_checks_script_fails_when_a_check_fails(tmp_path):
    """With a GPU that answers but an interpreter that fails every check, the script runs
    every check and exits non-zero."""
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'Fake GPU, 1 MiB, 0'\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHON": "false"}
    res = subprocess.run(["bash", str(ROOT / "bench" / "gpu_checks.sh")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "GPU checks failed: CuPy and Numba import GPU tests GPU benchmark" in res.stderr
