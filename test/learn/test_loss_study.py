"""The loss study's quick mode: every loss trained and scored, files written, values sane."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import loss_study  # noqa: E402


def test_quick_study_writes_table_plot_and_results(tmp_path):
    paths = loss_study.main(["--quick", "--seeds", "0", "1", "--out", str(tmp_path)])
    for key in ("csv", "md", "png"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    with open(paths["csv"], encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(loss_study.LOSSES) * 2
    assert {r["loss"] for r in rows} == {label for label, _, _ in loss_study.LOSSES}
    assert {r["seed"] for r in rows} == {"0", "1"}
    for row in rows:
        assert 0.0 <= float(row["mean_dice"]) <= 1.0
        assert 0.0 <= float(row["mean_iou"]) <= float(row["mean_dice"]) + 1e-9
        dice = [float(v) for k, v in row.items() if k.startswith("dice_")]
        assert len(dice) == 6
        assert all(math.isnan(d) or 0.0 <= d <= 1.0 for d in dice)
    table = paths["md"].read_text(encoding="utf-8").splitlines()
    body = [line for line in table if line.startswith("| ") and "---" not in line]
    assert len(body) == 1 + len(loss_study.LOSSES)  # header + one row per loss
    assert all(line.count("|") == 6 + 4 for line in body)
    assert "**obstacle**" in table[0]
