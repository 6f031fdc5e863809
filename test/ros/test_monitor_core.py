"""Dice monitor core without ROS: rosbags mask/label pairs in, metrics and messages out."""

import json

import numpy as np
import pytest
from conftest import TS, shipped_model_or_skip

from dice_seg_ros.classes import load_classes
from dice_seg_ros.errors import ImageEncodingError
from dice_seg_ros.ros.diagnostics import (LEVEL_ERROR, LEVEL_OK, LEVEL_STALE, LEVEL_WARN,
                                          diagnostic_array)
from dice_seg_ros.ros.monitor_core import DICE_ROWS, MonitorCore, write_snapshot
from dice_seg_ros.runtime.image_conversion import numpy_to_image
from dice_seg_ros.runtime.metrics import DiceTracker, nanmean
from dice_seg_ros.runtime.pairing import header_stamp_ns

Image = TS.types["sensor_msgs/msg/Image"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
Float32 = TS.types["std_msgs/msg/Float32"]
F32Array = TS.types["std_msgs/msg/Float32MultiArray"]
Layout = TS.types["std_msgs/msg/MultiArrayLayout"]
Dim = TS.types["std_msgs/msg/MultiArrayDimension"]
CLASSES = load_classes()
C = CLASSES.num_classes


def roundtrip(msg, typename):
    return TS.deserialize_cdr(TS.serialize_cdr(msg, typename), typename)


def header(index):
    return Header(stamp=Time(sec=100 + index, nanosec=5000), frame_id="camera")


def pair_arrays(index, noise=0.2, size=(24, 32)):
    rng = np.random.default_rng(index)
    target = rng.integers(0, C, size, dtype=np.uint8)
    target[0, :4] = CLASSES.ignore_index
    pred = target.copy()
    flip = rng.random(size) < noise
    pred[flip] = rng.integers(0, C, int(flip.sum()), dtype=np.uint8)
    pred[0, :4] = 0
    return pred, target


def pair_msgs(index, label_format="ids", **kw):
    pred, target = pair_arrays(index, **kw)
    mask = numpy_to_image(pred, "mono8", header(index), Image)
    if label_format == "color":
        label = numpy_to_image(CLASSES.palette()[target], "rgb8", header(index), Image)
    else:
        label = numpy_to_image(target, "mono8", header(index), Image)
    return (roundtrip(mask, "sensor_msgs/msg/Image"), roundtrip(label, "sensor_msgs/msg/Image"))


@pytest.mark.parametrize("label_format", ["ids", "color"])
def test_scores_equal_dice_tracker(label_format):
    core = MonitorCore(CLASSES, label_format=label_format, window_size=3, ema_alpha=0.3)
    reference = DiceTracker(C, CLASSES.ignore_index, window_size=3, ema_alpha=0.3)
    for index in range(6):
        scores = core.score_pair(*pair_msgs(index, label_format))
        expected = reference.update(*pair_arrays(index), stamp_ns=header_stamp_ns(header(index)))
        np.testing.assert_array_equal(scores.dice, expected.dice)
        np.testing.assert_array_equal(scores.iou, expected.iou)
        assert scores.stamp_ns == (100 + index) * 10**9 + 5000
    table = core.dice_table()
    np.testing.assert_allclose(table[0], reference.frames[-1].dice, rtol=1e-6)
    np.testing.assert_allclose(table[1], reference.window_dice(), rtol=1e-6)
    np.testing.assert_allclose(table[2], reference.cumulative.dice(), rtol=1e-6)
    np.testing.assert_allclose(table[3], reference.ema_dice(), rtol=1e-6)
    assert core.mean_dice_msg(Float32).data == pytest.approx(nanmean(reference.window_dice()))
    assert core.scored == 6


def test_unpaired_counts_received_minus_paired():
    core = MonitorCore(CLASSES)
    for _ in range(5):
        core.count("mask")
    for _ in range(4):
        core.count("labels")
    for index in range(3):
        core.score_pair(*pair_msgs(index))
    assert core.unpaired == 5 + 4 - 2 * 3
    status = core.status()
    assert status.values["unpaired"] == "3" and status.values["received_mask"] == "5"


def test_unpaired_reasons_add_up_to_unpaired():
    core = MonitorCore(CLASSES)
    for index in range(3):
        mask, label = pair_msgs(index)
        core.add("mask", mask)
        if index != 1:
            core.add("labels", label)
    _, late_label = pair_msgs(7)
    core.add("labels", late_label)   # its mask never comes: still pending at report time
    reasons = core.unpaired_by_reason()
    assert core.unpaired == 2 and sum(reasons.values()) == core.unpaired
    assert reasons["pending"] >= 1


def test_dice_message_layout_names_rows_and_classes():
    core = MonitorCore(CLASSES)
    core.score_pair(*pair_msgs(0))
    msg = roundtrip(core.dice_msg(F32Array, Layout, Dim), "std_msgs/msg/Float32MultiArray")
    rows, cols = msg.layout.dim
    assert rows.label.split(",") == list(DICE_ROWS) and rows.size == 4
    assert cols.label.split(",") == list(CLASSES.names) and cols.size == C
    assert rows.stride == 4 * C and cols.stride == C
    data = np.asarray(msg.data).reshape(4, C)
    np.testing.assert_allclose(data, core.dice_table(), equal_nan=True)


def test_status_levels_follow_thresholds():
    core = MonitorCore(CLASSES, warn_below=0.6, error_below=0.3)
    assert core.status().level == LEVEL_STALE
    core.score_pair(*pair_msgs(0, noise=0.0))
    good = core.status()
    assert good.level == LEVEL_OK
    assert good.values["dice_window/grass"] == "1.000"
    assert {f"dice_{row}/{name}" for row in DICE_ROWS for name in CLASSES.names} <= set(
        good.values)
    core.warn_below = 1.01
    assert core.status().level == LEVEL_WARN and "warn_below" in core.status().message
    core.error_below = 1.01
    assert core.status().level == LEVEL_ERROR


def test_low_dice_is_an_error_status():
    core = MonitorCore(CLASSES, warn_below=0.6, error_below=0.3)
    core.score_pair(*pair_msgs(1, noise=1.0))
    status = core.status()
    assert status.level == LEVEL_ERROR and "error_below" in status.message
    array = diagnostic_array([status], header(0), TS.types["diagnostic_msgs/msg/DiagnosticArray"],
                             TS.types["diagnostic_msgs/msg/DiagnosticStatus"],
                             TS.types["diagnostic_msgs/msg/KeyValue"])
    back = roundtrip(array, "diagnostic_msgs/msg/DiagnosticArray")
    keys = {kv.key for kv in back.status[0].values}
    assert back.status[0].level == LEVEL_ERROR and "dice_window/water" in keys


def test_size_mismatch_names_both_sizes():
    core = MonitorCore(CLASSES)
    mask, _ = pair_msgs(0)
    _, label = pair_msgs(0, size=(12, 16))
    with pytest.raises(ValueError, match="32x24.*16x12"):
        core.score_pair(mask, label)
    assert core.errors.counts == {"size_mismatch": 1} and core.status().level == LEVEL_ERROR
    core.score_pair(*pair_msgs(1))
    assert core.last_error is None and core.scored == 1


def test_colour_mask_is_refused():
    core = MonitorCore(CLASSES)
    _, label = pair_msgs(0)
    rgb_mask = numpy_to_image(np.zeros((24, 32, 3), np.uint8), "rgb8", header(0), Image)
    with pytest.raises(ImageEncodingError, match="rgb8"):
        core.score_pair(rgb_mask, label)


def test_unknown_label_ids_are_refused():
    core = MonitorCore(CLASSES)
    mask, _ = pair_msgs(0)
    label = numpy_to_image(np.full((24, 32), 17, np.uint8), "mono8", header(0), Image)
    with pytest.raises(ValueError, match="17"):
        core.score_pair(mask, label)


def test_bad_label_format_is_refused():
    with pytest.raises(ValueError, match="label_format"):
        MonitorCore(CLASSES, label_format="rgb")


def test_pairs_per_second_uses_clock():
    now = [10.0]
    core = MonitorCore(CLASSES, clock=lambda: now[0])
    for index in range(5):
        core.score_pair(*pair_msgs(index))
        now[0] += 0.25
    assert core.pairs_per_second() == pytest.approx(4.0)


def test_report_needs_a_pair(tmp_path):
    with pytest.raises(ValueError, match="no mask/label pair"):
        MonitorCore(CLASSES).write_report(tmp_path)


def test_report_matches_tracker(tmp_path):
    pytest.importorskip("matplotlib")
    core = MonitorCore(CLASSES)
    core.count("mask")
    for index in range(4):
        core.count("mask")
        core.count("labels")
        core.score_pair(*pair_msgs(index))
    core.write_report(tmp_path / "report")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["frames"] == 4 and report["unpaired"] == 1
    cumulative = core.tracker.cumulative.dice()
    for class_id, name in enumerate(CLASSES.names):
        assert report["dice"][name] == pytest.approx(cumulative[class_id])
    for name in ("per_frame.csv", "dice_over_time.png", "confusion_matrix.png"):
        assert (tmp_path / "report" / name).is_file()


def test_monitor_agrees_with_dice_seg_eval(tmp_path):
    """The node cores fed a bag's frames give the numbers `dice-seg eval` reports for it."""
    model = shipped_model_or_skip()
    from rosbags.highlevel import AnyReader

    from dice_seg_ros.cli import main as dice_seg
    from dice_seg_ros.ros.segmentation_core import FrameProcessor, OutputFlags
    from dice_seg_ros.runtime.inference import Segmenter

    bag = tmp_path / "bag"
    assert dice_seg(["make-bag", "--out", str(bag), "--frames", "5", "--width", "96",
                     "--height", "72"]) == 0
    assert dice_seg(["eval", "--bag", str(bag), "--image-topic", "/camera/image_raw",
                     "--label-topic", "/camera/labels", "--model", str(model), "--device", "cpu",
                     "--out", str(tmp_path / "eval"), "--no-output-bag", "--no-progress"]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())

    processor = FrameProcessor(Segmenter(model, device="cpu", threads=1), CLASSES, Image)
    core = MonitorCore(CLASSES)
    by_stamp = {}
    with AnyReader([bag], default_typestore=TS) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            by_stamp.setdefault(header_stamp_ns(msg.header), {})[conn.topic] = msg
    for msgs in by_stamp.values():
        (result,) = processor.process_batch([msgs["/camera/image_raw"]], [OutputFlags()])
        mask = result.mask
        core.score_pair(mask, msgs["/camera/labels"])
    assert core.scored == report["frames"] == 5
    dice = core.tracker.cumulative.dice()
    for class_id, name in enumerate(CLASSES.names):
        assert report["dice"][name] == pytest.approx(dice[class_id], nan_ok=True)
    assert report["mean_dice"] == pytest.approx(core.tracker.cumulative.mean_dice())


def test_add_pairs_equal_stamps_and_counts_the_label_of_a_dropped_mask():
    """Frame 1's mask was dropped: its label is counted unpaired, never scored against mask 2."""
    core = MonitorCore(CLASSES)
    masks, labels = zip(*(pair_msgs(index) for index in range(3)))
    added = [core.add("labels", labels[0]), core.add("mask", masks[0]),
             core.add("labels", labels[1]), core.add("labels", labels[2]),
             core.add("mask", masks[2])]
    assert [len(a.scores) for a in added] == [0, 1, 0, 0, 1]
    assert [s.stamp_ns for a in added for s in a.scores] == [
        header_stamp_ns(header(0)), header_stamp_ns(header(2))]
    status = core.status()
    assert status.values["unpaired_label_no_partner"] == "1"
    assert core.scored == 2 and core.unpaired == 1


def test_slop_pairs_labels_stamped_differently():
    """Labels stamped 4 ms after their masks pair with a 10 ms slop once both streams move on."""
    core = MonitorCore(CLASSES, slop_s=0.01)
    for index in range(3):
        mask, label = pair_msgs(index)
        label.header.stamp.nanosec += 4_000_000
        core.add("mask", mask)
        core.add("labels", label)
    assert core.scored == 2 and core.errors.total == 0
    assert MonitorCore(CLASSES).add("mask", mask).scores == []


def test_bad_pair_from_add_is_returned_not_raised():
    core = MonitorCore(CLASSES)
    mask, _ = pair_msgs(0)
    _, label = pair_msgs(0, size=(12, 16))
    core.add("mask", mask)
    added = core.add("labels", label)
    assert added.scores == [] and "16x12" in str(added.errors[0]) and core.errors.total == 1


def test_pending_buffers_are_bounded_and_evictions_counted():
    core = MonitorCore(CLASSES, max_pending=3)
    for index in range(10):
        core.add("mask", pair_msgs(index)[0])
    assert core.pairer.pending == 3
    assert core.status().values["unpaired_image_buffer_full"] == "7"


def test_rows_are_streamed_and_memory_keeps_only_recent_frames(tmp_path):
    rows = tmp_path / "live" / "per_frame.csv"
    core = MonitorCore(CLASSES, rows_path=rows, recent_frames=3)
    for index in range(8):
        core.score_pair(*pair_msgs(index))
        core.rows.flush()
        assert len(rows.read_text().splitlines()) == 1 + index + 1
    assert len(core.tracker.frames) == 3 and core.scored == 8
    paths = core.write_report(tmp_path / "report")
    report = json.loads(paths["report"].read_text())
    assert report["frames"] == 8 and report["plotted_frames"] == 3
    assert paths["per_frame"].read_text() == rows.read_text()
    assert paths["per_frame"].read_text().splitlines()[-1].startswith("7,")


def test_a_report_holds_its_snapshot_while_scoring_goes_on(tmp_path):
    pytest.importorskip("matplotlib")
    core = MonitorCore(CLASSES)
    for index in range(3):
        core.score_pair(*pair_msgs(index))
    snapshot = core.snapshot()
    for index in range(3, 6):
        core.score_pair(*pair_msgs(index))
    paths = write_snapshot(snapshot, tmp_path / "report", CLASSES)
    report = json.loads(paths["report"].read_text())
    assert not list(paths["report"].parent.glob(".*.tmp")), "the atomic write left its temp"
    assert report["frames"] == 3
    assert len(paths["per_frame"].read_text().splitlines()) == 1 + 3
    assert core.scored == 6
    core.close()
    assert not core.rows.path.exists()
    with pytest.raises(ValueError, match="no mask/label pair"):
        MonitorCore(CLASSES).write_report(tmp_path / "none")


DiagArray = TS.types["diagnostic_msgs/msg/DiagnosticArray"]
DiagStatus = TS.types["diagnostic_msgs/msg/DiagnosticStatus"]
KeyValue = TS.types["diagnostic_msgs/msg/KeyValue"]


def estimate_msg(index, estimate):
    """Return the segmentation node's ~/estimated_dice_stamped of frame ``index``, via CDR."""
    from dice_seg_ros.ros.segmentation_core import EstimatedDiceTracker

    status = EstimatedDiceTracker(5, "net.quality.json", 0.5, 0.3).frame_status(estimate)
    msg = diagnostic_array([status], header(index), DiagArray, DiagStatus, KeyValue)
    return roundtrip(msg, "diagnostic_msgs/msg/DiagnosticArray")


def test_estimate_is_read_from_the_stamped_status_and_bad_messages_are_named():
    from dice_seg_ros.ros.monitor_core import estimate_from_array

    assert estimate_from_array(estimate_msg(3, 0.123456)) == pytest.approx(0.123456)
    empty = DiagArray(header=header(4), status=[])
    with pytest.raises(ValueError, match=r"estimated_dice_stamped.*104000005000 ns"):
        estimate_from_array(empty)
    with pytest.raises(ValueError, match="estimates=True"):
        MonitorCore(CLASSES).add_estimate(estimate_msg(3, 0.5))


def test_estimates_join_true_dice_by_stamp_and_report_mae_spearman_scatter(tmp_path):
    import csv

    from dice_seg_ros.runtime.estimated_dice import mean_abs_error, spearman

    core = MonitorCore(CLASSES, estimates=True)
    estimates = {index: 0.1 + 0.08 * index for index in range(8)}
    for index in range(8):
        mask, label = pair_msgs(index, noise=0.05 * index)
        if index % 2:  # the estimate may come before or after its mask and label
            core.add_estimate(estimate_msg(index, estimates[index]))
        core.add("mask", mask)
        if index != 5:  # frame 5's label never comes: its estimate joins nothing
            core.add("labels", label)
        if not index % 2:
            core.add_estimate(estimate_msg(index, estimates[index]))
    core.add_estimate(estimate_msg(20, 0.9))  # a frame the monitor never scored
    values = core.status().values
    assert values["estimates_received"] == "9" and values["estimates_joined"] == "7"

    paths = core.write_report(tmp_path)
    with open(paths["estimated_dice"], newline="") as stream:
        rows = list(csv.DictReader(stream))
    with open(paths["per_frame"], newline="") as stream:
        per_frame = list(csv.DictReader(stream))
    scored = [index for index in range(8) if index != 5]
    assert [int(row["stamp_ns"]) for row in rows] == [header_stamp_ns(header(i)) for i in scored]
    true = [float(row["mean_dice"]) for row in per_frame]
    estimated = [estimates[index] for index in scored]
    assert [float(row["true_mean_dice"]) for row in rows] == pytest.approx(true, abs=1e-6)
    assert [float(row["estimated_mean_dice"]) for row in rows] == pytest.approx(estimated,
                                                                                abs=1e-6)
    figures = json.loads(paths["report"].read_text())["estimated_dice"]
    assert figures["frames"] == 7
    assert figures["mae"] == pytest.approx(mean_abs_error(estimated, true), abs=1e-6)
    assert figures["spearman"] == pytest.approx(spearman(np.array(estimated), np.array(true)))
    assert float(values["estimated_dice_mae"]) == pytest.approx(figures["mae"], abs=1e-3)
    assert paths["estimated_plot"].stat().st_size > 0
    core.close()


def test_estimates_waiting_for_a_partner_are_bounded():
    core = MonitorCore(CLASSES, estimates=True, max_pending=4)
    for index in range(50):
        core.add_estimate(estimate_msg(index, 0.5))
    assert core.estimates.pairer.pending <= 4
    assert core.status().values["estimates_unjoined"] == "46"
    core.close()
