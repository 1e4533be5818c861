"""The README's first command: `serfast demo` runs every stage on embedded audio."""

import csv

from click.testing import CliRunner

from serfast.demo import STYLES
from serfast_cli.main import main


def test_demo_runs_the_whole_pipeline(tmp_path):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "extracted 144 of 144 rows (0 failed)" in result.output
    for name in ("features.npy", "features.frames.npy", "model/model.json",
                 "model/report.md", "labels.csv", "summary.csv", "plots/call.png"):
        assert (folder / name).exists(), name
    with open(folder / "summary.csv", newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["channel"] for r in summary] == ["0", "1"]
    assert all(float(r["speech_seconds"]) > 5 and r["dominant"] in STYLES for r in summary)
