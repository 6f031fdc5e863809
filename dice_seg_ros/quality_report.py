"""Estimated against true Dice per frame: CSV, agreement figures and a scatter plot.

Written by ``dice-seg eval --estimated-dice`` beside its report, and used by
``benchmarks/bench_quality.py``. Plots use matplotlib's object API with the Agg
canvas, as :mod:`dice_seg_ros.report` does.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dice_seg_ros.quality import mean_abs_error, spearman

ESTIMATE_CSV = "estimated_dice.csv"
ESTIMATE_PLOT = "estimated_vs_true_dice.png"
ESTIMATE_COLUMNS = ("frame", "stamp_ns", "true_mean_dice", "estimated_mean_dice")


def agreement(estimated: Sequence[float], true: Sequence[float]) -> dict[str, Any]:
    """Return frames, MAE and Spearman over frames where both values are finite (None if < 2)."""
    estimated, true = np.asarray(estimated, np.float64), np.asarray(true, np.float64)
    keep = np.isfinite(estimated) & np.isfinite(true)
    if keep.sum() < 2:
        return {"frames": int(keep.sum()), "mae": None, "spearman": None}
    rho = spearman(estimated[keep], true[keep])
    return {"frames": int(keep.sum()), "mae": mean_abs_error(estimated[keep], true[keep]),
            "spearman": None if np.isnan(rho) else rho}


def plot_estimated_vs_true(path: Path, estimated: Sequence[float], true: Sequence[float],
                           title: str) -> None:
    """Scatter estimated against true mean Dice per frame, with the diagonal."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.8, 4.6))
    figure.subplots_adjust(left=0.14, right=0.96, bottom=0.12, top=0.9)
    axes = figure.add_subplot()
    axes.scatter(true, estimated, s=10, alpha=0.6)
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1)
    axes.set(xlabel="true mean Dice", ylabel="estimated mean Dice", xlim=(0, 1), ylim=(0, 1),
             title=title)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def write_quality_report(out_dir: str | Path, stamps: Sequence[int | None],
                         estimated: Sequence[float],
                         true: Sequence[float]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write estimated_dice.csv and the scatter plot; return (agreement figures, paths).

    Args:
        out_dir: directory to write into.
        stamps: each frame's stamp in ns (None when unknown).
        estimated: each frame's estimated mean Dice.
        true: each frame's true mean Dice (NaN where no class was present).

    """
    if not len(stamps) == len(estimated) == len(true):
        raise ValueError(f"{len(stamps)} stamps, {len(estimated)} estimates and {len(true)} "
                         f"true values: one of each per frame")
    out = Path(out_dir)
    paths = {"estimated_dice": out / ESTIMATE_CSV, "estimated_plot": out / ESTIMATE_PLOT}
    with open(paths["estimated_dice"], "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(ESTIMATE_COLUMNS)
        for k, (stamp, est, tru) in enumerate(zip(stamps, estimated, true)):
            writer.writerow([k, "" if stamp is None else stamp, f"{tru:.6f}", f"{est:.6f}"])
    figures = agreement(estimated, true)
    title = (f"{figures['frames']} frames" if figures["mae"] is None else
             f"MAE {figures['mae']:.3f}, Spearman "
             f"{'n/a' if figures['spearman'] is None else format(figures['spearman'], '.2f')}")
    plot_estimated_vs_true(paths["estimated_plot"], estimated, true, title)
    return figures, paths
