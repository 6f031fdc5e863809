"""Write an evaluation report: JSON summary, per-frame CSV, plots, estimated vs true Dice.

Used by ``dice-seg eval`` and the Dice monitor node, so both report the same
figures from the same :class:`~dice_seg_ros.runtime.metrics.DiceTracker`. Plots use
matplotlib's object API with the Agg canvas (no pyplot global state, no
display), so they can be written from a ROS callback thread.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dice_seg_ros.runtime.estimated_dice import mean_abs_error, spearman
from dice_seg_ros.runtime.metrics import DiceTracker, FrameScores

REPORT_JSON = "report.json"
PER_FRAME_CSV = "per_frame.csv"
DICE_PLOT = "dice_over_time.png"
CONFUSION_PLOT = "confusion_matrix.png"


def _clean(value: Any) -> Any:
    """Return ``value`` as plain JSON: NaN/inf become null, numpy types become Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def summary(tracker: DiceTracker, class_names: Sequence[str], *, unpaired: int, fps: float,
            latency_ms: dict[str, float], extra: dict[str, Any] | None = None) -> dict:
    """Return the report dictionary (JSON-ready: NaN -> None).

    Keys: frames, unpaired, classes, dice and iou (class name -> cumulative
    score, None for a class never seen), mean_dice, mean_iou,
    classes_absent_from_labels (names of classes with no label pixel: their Dice
    is 0 where predicted, None where not), mean_dice_present (mean Dice over the
    classes present in the labels only), fps, latency_ms
    (stage -> mean ms per frame), confusion_matrix (rows = label, cols =
    prediction, pixels), then ``extra`` (which may override any of them).
    """
    names = list(class_names)
    if len(names) != tracker.num_classes:
        raise ValueError(f"{len(names)} class names {names} for a tracker of "
                         f"{tracker.num_classes} classes")
    cumulative = tracker.cumulative
    present = cumulative.labelled()
    dice = cumulative.dice()
    report = {
        "frames": len(tracker.frames),
        "unpaired": int(unpaired),
        "classes": names,
        "dice": dict(zip(names, dice)),
        "iou": dict(zip(names, cumulative.iou())),
        "mean_dice": cumulative.mean_dice(),
        "mean_iou": cumulative.mean_iou(),
        "classes_absent_from_labels": [n for n, p in zip(names, present) if not p],
        "mean_dice_present": cumulative.mean_dice_present(),
        "fps": fps,
        "latency_ms": dict(latency_ms),
        "confusion_matrix": cumulative.matrix,
    }
    report.update(extra or {})
    return _clean(report)


def per_frame_header(class_names: Sequence[str]) -> list[str]:
    """Return the per_frame.csv column names."""
    return (["frame", "stamp_ns", "mean_dice", "mean_iou"]
            + [f"dice_{n}" for n in class_names] + [f"iou_{n}" for n in class_names])


def per_frame_row(index: int, frame: FrameScores) -> list[Any]:
    """Return one per_frame.csv row: index, stamp (ns), mean Dice/IoU, per-class Dice and IoU."""
    scores = [frame.mean_dice, frame.mean_iou, *frame.dice, *frame.iou]
    return ([index, "" if frame.stamp_ns is None else frame.stamp_ns]
            + [f"{v:.6f}" for v in scores])


def write_per_frame_csv(path: Path, tracker: DiceTracker, class_names: Sequence[str]) -> None:
    """Write one row per frame: index, stamp (ns), mean Dice/IoU, per-class Dice and IoU."""
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(per_frame_header(class_names))
        for index, frame in enumerate(tracker.frames):
            writer.writerow(per_frame_row(index, frame))


def plot_title(what: str, extra: dict[str, Any] | None) -> str:
    """Return a plot title naming the recording and the model the figures are of, if known."""
    names = [Path(str(extra[key])).name for key in ("bag", "model")
             if extra and extra.get(key)]
    return f"{what}: {', '.join(names)}" if names else what


def plot_dice_over_time(path: Path, tracker: DiceTracker, class_names: Sequence[str],
                        colors: np.ndarray | None = None, title: str = "Dice per frame"
                        ) -> Any:
    """Plot per-class Dice per frame (gaps where a class is absent) and the mean.

    Returns the matplotlib Figure, saved to ``path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # Fixed margins: constrained layout costs about three times the drawing time.
    figure = Figure(figsize=(9, 4.5))
    figure.subplots_adjust(left=0.07, right=0.85, bottom=0.12, top=0.88)
    axes = figure.add_subplot()
    frames = list(tracker.frames)
    if frames:
        x = np.arange(len(frames))
        dice = np.array([f.dice for f in frames])
        for c, name in enumerate(class_names):
            color = None if colors is None else np.asarray(colors[c]) / 255.0
            axes.plot(x, dice[:, c], label=name, color=color, linewidth=1.2, marker=".",
                      markersize=3)
        axes.plot(x, [f.mean_dice for f in frames], label="mean", color="black", linewidth=2.2)
    else:
        axes.text(0.5, 0.5, "no frames evaluated", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set(xlabel="frame", ylabel="Dice", ylim=(-0.02, 1.02), title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if frames:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    figure.savefig(path, dpi=110)
    return figure


def plot_confusion(path: Path, matrix: np.ndarray, class_names: Sequence[str],
                   title: str = "Confusion matrix") -> Any:
    """Plot the row-normalised confusion matrix (rows = label) in percent of label pixels.

    Returns the matplotlib Figure, saved to ``path``.
    """
    from matplotlib.figure import Figure

    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(totals > 0, 100 * matrix / np.maximum(totals, 1), np.nan)
    size = 1.0 + 0.8 * len(class_names)
    figure = Figure(figsize=(size + 1.5, size + 0.5))
    figure.subplots_adjust(left=0.2, right=0.95, bottom=0.22, top=0.88)
    axes = figure.add_subplot()
    image = axes.imshow(percent, cmap="Blues", vmin=0.0, vmax=100.0)
    figure.colorbar(image, ax=axes, label="% of the label's pixels")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=class_names)
    axes.set(xlabel="predicted", ylabel="label", title=title)
    for (row, col), value in np.ndenumerate(percent):
        text = "-" if np.isnan(value) else f"{value:.1f}"
        axes.text(col, row, text, ha="center", va="center", fontsize=8,
                  color="white" if value > 60 else "black")
    figure.savefig(path, dpi=110)
    return figure


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON atomically: a reader sees the old file or the whole new one.

    Written to a temporary file in the same folder, then renamed over ``path``.
    """
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(out_dir: str | Path, tracker: DiceTracker, class_names: Sequence[str], *,
                 unpaired: int, fps: float, latency_ms: dict[str, float],
                 extra: dict[str, Any] | None = None,
                 colors: np.ndarray | None = None,
                 per_frame: Callable[[Path], None] | None = None) -> dict[str, Path]:
    """Write report.json, per_frame.csv, dice_over_time.png and confusion_matrix.png.

    Args:
        out_dir: directory to write into (created if needed).
        tracker: the scores of every evaluated frame.
        class_names: class name per class id.
        unpaired: images plus labels that found no partner.
        fps: frames evaluated per second (wall clock).
        latency_ms: mean milliseconds per frame of each stage.
        extra: more JSON keys (e.g. bag, model, stopped_by); may override.
        colors: optional ``(C, 3)`` uint8 class colours for the Dice plot.
        per_frame: writes per_frame.csv to the path it is given (default: the
            tracker's frames; the monitor copies the rows it streamed).

    Returns:
        ``{"report", "per_frame", "dice_over_time", "confusion_matrix"}`` -> path.

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / REPORT_JSON, "per_frame": out / PER_FRAME_CSV,
             "dice_over_time": out / DICE_PLOT, "confusion_matrix": out / CONFUSION_PLOT}
    data = summary(tracker, class_names, unpaired=unpaired, fps=fps, latency_ms=latency_ms,
                   extra=extra)
    write_json(paths["report"], data)
    if per_frame is None:
        write_per_frame_csv(paths["per_frame"], tracker, class_names)
    else:
        per_frame(paths["per_frame"])
    plot_dice_over_time(paths["dice_over_time"], tracker, class_names, colors,
                        plot_title("Dice per frame", extra))
    plot_confusion(paths["confusion_matrix"], tracker.cumulative.matrix, class_names,
                   plot_title("Confusion matrix", extra))
    return paths


# Estimated against true Dice per frame: written by dice-seg eval --estimated-dice
# and the monitor beside their report.
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
