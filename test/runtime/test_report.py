from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dice_seg_ros.runtime.metrics import DiceTracker
from dice_seg_ros.runtime.report import write_report

NAMES = ["sky", "grass", "trail"]


def _tracker():
    tracker = DiceTracker(3, ignore_index=255)
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    tracker.update(np.where(target == 255, 0, target), target, stamp_ns=100)  # perfect
    pred = np.array([[0, 1, 1, 1], [1, 1, 0, 1]], np.uint8)
    tracker.update(pred, target, stamp_ns=200)                   # trail all missed
    tracker.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), stamp_ns=300)
    return tracker


def test_report_files_and_json(tmp_path):
    tracker = _tracker()
    paths = write_report(tmp_path / "out", tracker, NAMES, unpaired=2, fps=12.5,
                         latency_ms={"decode": 1.0, "infer": 5.0},
                         extra={"stopped_by": None, "bag": "x", "flag": np.bool_(True),
                                "count": np.int64(3)})
    assert set(paths) == {"report", "per_frame", "dice_over_time", "confusion_matrix"}
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    assert paths["dice_over_time"].read_bytes()[:4] == b"\x89PNG"
    report = json.loads(paths["report"].read_text())
    assert report["frames"] == 3 and report["unpaired"] == 2 and report["fps"] == 12.5
    assert report["classes"] == NAMES and report["bag"] == "x" and report["stopped_by"] is None
    expected = tracker.cumulative.dice()
    assert report["dice"] == pytest.approx(dict(zip(NAMES, expected)))
    assert report["dice"]["trail"] == pytest.approx(2 / 3)  # 2 TP of 2+4 pred/label pixels
    assert report["mean_dice"] == pytest.approx(np.mean(expected))
    assert report["iou"]["sky"] == pytest.approx(tracker.cumulative.iou()[0])
    assert np.array(report["confusion_matrix"]).sum() == 7 + 7 + 4
    assert report["latency_ms"] == {"decode": 1.0, "infer": 5.0}
    assert report["flag"] is True and report["count"] == 3


def test_per_frame_csv(tmp_path):
    tracker = _tracker()
    paths = write_report(tmp_path, tracker, NAMES, unpaired=0, fps=1.0, latency_ms={})
    rows = list(csv.DictReader(paths["per_frame"].open()))
    assert [r["stamp_ns"] for r in rows] == ["100", "200", "300"]
    assert float(rows[0]["mean_dice"]) == 1.0
    assert float(rows[1]["dice_trail"]) == 0.0
    assert rows[2]["dice_grass"] == "nan"  # absent class: NaN, not 0 or 1
    assert float(rows[2]["dice_sky"]) == 1.0


def test_empty_tracker_gives_nulls_not_nan(tmp_path):
    paths = write_report(tmp_path, DiceTracker(3), NAMES, unpaired=4, fps=0.0, latency_ms={})
    text = paths["report"].read_text()
    assert "NaN" not in text
    report = json.loads(text)
    assert report["frames"] == 0 and report["mean_dice"] is None
    assert report["dice"] == {"sky": None, "grass": None, "trail": None}
    assert paths["confusion_matrix"].stat().st_size > 0


def test_class_name_count_must_match(tmp_path):
    with pytest.raises(ValueError, match="2 class names"):
        write_report(tmp_path, DiceTracker(3), NAMES[:2], unpaired=0, fps=0.0, latency_ms={})


def test_classes_absent_from_labels_are_marked_and_kept_out_of_mean_present(tmp_path):
    tracker = DiceTracker(3, ignore_index=255)
    target = np.array([[0, 0, 1, 1]], np.uint8)       # no "trail" (2) in the labels
    tracker.update(np.array([[0, 0, 1, 2]], np.uint8), target, stamp_ns=1)
    paths = write_report(tmp_path, tracker, NAMES, unpaired=0, fps=1.0, latency_ms={})
    report = json.loads(paths["report"].read_text())
    assert report["classes_absent_from_labels"] == ["trail"]
    assert report["dice"]["trail"] == 0.0             # predicted although absent
    assert report["dice"]["grass"] == pytest.approx(2 / 3)
    assert report["mean_dice"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert report["mean_dice_present"] == pytest.approx((1 + 2 / 3) / 2)


def test_plots_name_the_bag_and_model_and_the_colour_bar_is_in_percent(tmp_path):
    pytest.importorskip("matplotlib")
    from dice_seg_ros.runtime.report import plot_confusion, plot_dice_over_time, plot_title

    tracker = _tracker()
    title = plot_title("Confusion matrix", {"bag": "/data/drive_03", "model": "/m/seg.onnx"})
    assert title == "Confusion matrix: drive_03, seg.onnx"
    assert plot_title("Dice per frame", {"bag": None}) == "Dice per frame"
    figure = plot_confusion(tmp_path / "c.png", tracker.cumulative.matrix, NAMES, title=title)
    image_axes, bar_axes = figure.axes
    assert image_axes.get_title() == title
    assert bar_axes.get_ylim() == pytest.approx((0.0, 100.0))
    cells = [text.get_text() for text in image_axes.texts]
    # The annotations are the percentages the colour bar spans: rows sum to 100.
    rows = np.array([float(c) for c in cells]).reshape(3, 3)
    np.testing.assert_allclose(rows.sum(axis=1), 100.0, atol=0.2)
    figure = plot_dice_over_time(tmp_path / "d.png", tracker, NAMES, title=title)
    assert figure.axes[0].get_title() == title
