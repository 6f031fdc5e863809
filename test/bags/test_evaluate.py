from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SMALL_H, SMALL_W, image_msg

from dice_seg_ros.bags.bag_io import BagReader, BagWriter
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag, output_topics
from dice_seg_ros.bags.synthetic_bag import (COMPRESSED_TOPIC, IMAGE_TOPIC, INFO_TOPIC,
                                             LABEL_TOPIC, START_NS, write_synthetic_bag)
from dice_seg_ros.classes import load_classes
from dice_seg_ros.cli import main
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.errors import BagError, ImageEncodingError
from dice_seg_ros.runtime.metrics import ConfusionMatrix
from dice_seg_ros.runtime.pairing import header_stamp_ns

MS = 1_000_000


def _eval(bag, out, segmenter, image_topic=IMAGE_TOPIC, label_topic=LABEL_TOPIC, **options):
    options.setdefault("progress", False)
    return evaluate_bag(bag, image_topic, label_topic, out, segmenter, EvalOptions(**options))


def _scenes(n=4, seed=3):
    return [generate_scene(seed + k, SMALL_W, SMALL_H) for k in range(n)]


def _bag(path, frames, extra=()):
    """Write (stamp, rgb, labels) frames plus (topic, stamp, msg or raw bytes) extras."""
    events = [(stamp, IMAGE_TOPIC, image_msg(rgb, stamp)) for stamp, rgb, _ in frames]
    events += [(stamp, LABEL_TOPIC, image_msg(ids, stamp, "mono8")) for stamp, _, ids in frames]
    events += [(stamp, topic, msg) for topic, stamp, msg in extra]
    with BagWriter(path) as bag:
        bag.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
        bag.add_topic(LABEL_TOPIC, "sensor_msgs/msg/Image")
        for stamp, topic, msg in sorted(events, key=lambda e: (e[0], e[1])):
            if isinstance(msg, bytes):
                bag.write_raw(topic, stamp, msg)
            else:
                bag.write(topic, stamp, msg)
    return path


def _frames(scenes, start=1000):
    return [((start + 100 * k) * MS, rgb, ids) for k, (rgb, ids) in enumerate(scenes)]


def test_eval_scores_and_output_bag(small_bag, tmp_path, tiny_segmenter):
    result = _eval(small_bag, tmp_path / "out", tiny_segmenter)
    report = result.report
    assert result.stopped_by is None and result.error is None
    assert report["frames"] == 4 and report["unpaired"] == 0
    # Independent check: segment the same scenes directly and pool the confusion.
    matrix = ConfusionMatrix(6, ignore_index=255)
    for rgb, ids in _scenes():
        matrix.update(tiny_segmenter.segment(rgb).class_ids, ids)
    names = load_classes().names
    assert report["dice"] == pytest.approx(
        {n: (None if np.isnan(v) else v) for n, v in zip(names, matrix.dice())})
    assert report["mean_iou"] == pytest.approx(matrix.mean_iou())
    assert set(report["latency_ms"]) >= {"decode", "pre", "infer", "post", "total"}
    assert report["fps"] > 0 and report["stopped_by"] is None
    for name in ("report", "per_frame", "dice_over_time", "confusion_matrix"):
        assert result.paths[name].stat().st_size > 0

    topics = output_topics(IMAGE_TOPIC)
    with BagReader(tmp_path / "out" / "output_bag") as bag:
        assert set(bag.topics()) == {IMAGE_TOPIC, *topics.values()}
        masks = list(bag.messages([topics["mask"]]))
        overlays = list(bag.messages([topics["overlay"]]))
        originals = list(bag.messages([IMAGE_TOPIC]))
    assert len(masks) == len(overlays) == len(originals) == 4
    for k, (mask, original) in enumerate(zip(masks, originals)):
        stamp = START_NS + k * 100 * MS
        assert header_stamp_ns(mask.msg.header) == header_stamp_ns(original.msg.header) == stamp
        assert mask.log_time_ns == stamp and mask.msg.header.frame_id == "camera_optical_frame"
        assert mask.msg.encoding == "mono8"
        expected = tiny_segmenter.segment(_scenes()[k][0]).class_ids
        np.testing.assert_array_equal(mask.msg.data.reshape(SMALL_H, SMALL_W), expected)


def test_batching_gives_the_same_report(small_bag, tmp_path, tiny_segmenter):
    one = _eval(small_bag, tmp_path / "a", tiny_segmenter, output_bag=False).report
    three = _eval(small_bag, tmp_path / "b", tiny_segmenter, batch_size=3,
                  output_bag=False).report
    assert one["dice"] == three["dice"] and three["frames"] == 4
    assert not (tmp_path / "a" / "output_bag").exists()


def test_compressed_sqlite3_bag_and_rerun_into_same_dir(tmp_path, tiny_segmenter):
    bag = write_synthetic_bag(tmp_path / "bag", 3, SMALL_W, SMALL_H, storage="sqlite3",
                              compressed=True, progress=False)
    for _ in range(2):  # a second run replaces the first run's output bag
        result = _eval(bag, tmp_path / "out", tiny_segmenter, image_topic=COMPRESSED_TOPIC)
        assert result.report["frames"] == 3
    assert output_topics(COMPRESSED_TOPIC)["mask"] == "/camera/dice_seg/mask"


def test_colour_labels_match_id_labels(tmp_path, tiny_segmenter):
    classes = load_classes()
    scenes = _scenes(2)
    path = tmp_path / "colour"
    with BagWriter(path) as bag:
        for stamp, rgb, ids in _frames(scenes):
            bag.write(IMAGE_TOPIC, stamp, image_msg(rgb, stamp))
            bag.write(LABEL_TOPIC, stamp, image_msg(classes.palette()[ids], stamp))
    colour = _eval(path, tmp_path / "c", tiny_segmenter, label_format="color").report
    ids = _eval(_bag(tmp_path / "ids", _frames(scenes)), tmp_path / "i", tiny_segmenter).report
    assert colour["dice"] == ids["dice"] and colour["frames"] == 2


def test_unpaired_frames_are_counted(tmp_path, tiny_segmenter):
    rgb, ids = _scenes(1)[0]
    extra = [(IMAGE_TOPIC, 5000 * MS, image_msg(rgb, 5000 * MS)),
             (LABEL_TOPIC, 7000 * MS, image_msg(ids, 7000 * MS, "mono8")),
             (IMAGE_TOPIC, 8000 * MS, image_msg(rgb, 8000 * MS)),
             (LABEL_TOPIC, 8015 * MS, image_msg(ids, 8015 * MS, "mono8"))]
    bag = _bag(tmp_path / "bag", _frames(_scenes(2)), extra)
    report = _eval(bag, tmp_path / "out", tiny_segmenter, max_offset_ms=20).report
    assert report["frames"] == 3  # two exact pairs + one 15 ms apart
    assert (report["unpaired_images"], report["unpaired_labels"], report["unpaired"]) == (1, 1, 2)
    strict = _eval(bag, tmp_path / "strict", tiny_segmenter, max_offset_ms=10).report
    assert strict["frames"] == 2 and strict["unpaired"] == 4


def _bag_with_short_image(path):
    rgb, _ = _scenes(1)[0]
    bad = image_msg(rgb, 1250 * MS)
    bad.data = bad.data[: len(bad.data) // 2]  # shorter than height * step
    return _bag(path, _frames(_scenes(4)),
                [(IMAGE_TOPIC, 1250 * MS, bad),
                 (LABEL_TOPIC, 1250 * MS, image_msg(np.zeros((SMALL_H, SMALL_W), np.uint8),
                                                    1250 * MS, "mono8"))])


def test_short_image_mid_bag_is_skipped_and_counted(tmp_path, tiny_segmenter):
    bag = _bag_with_short_image(tmp_path / "bag")
    result = _eval(bag, tmp_path / "out", tiny_segmenter, batch_size=2)
    assert result.error is None and result.stopped_by is None
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # Every good frame, before and after the bad one, is scored.
    assert report["frames"] == 4 and report["skipped"] == 1
    error = report["errors"]["image_decode"]
    assert error["count"] == 1 and error["first_stamps_ns"] == [1250 * MS]
    assert "/camera/image_raw at stamp 1250000000" in error["first_message"]
    with BagReader(tmp_path / "out" / "output_bag") as out:
        assert out.message_count(output_topics(IMAGE_TOPIC)["mask"]) == 4


def test_strict_stops_at_the_short_image_and_keeps_what_was_read(tmp_path, tiny_segmenter):
    bag = _bag_with_short_image(tmp_path / "bag")
    result = _eval(bag, tmp_path / "out", tiny_segmenter, batch_size=2, strict=True)
    assert isinstance(result.error, ImageEncodingError)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # Every good frame read before the stop (1000..1300 ms) is scored; only 1250 is lost.
    assert report["frames"] == 4 and report["not_evaluated"] == 0 and report["strict"]
    assert "/camera/image_raw at stamp 1250000000" in report["stopped_by"]
    assert report["errors"]["image_decode"]["count"] == 1


@pytest.mark.parametrize("strict", [False, True])
def test_undeserialisable_message_mid_bag_via_cli(tmp_path, tiny_onnx_model, capsys, strict):
    bag = _bag(tmp_path / "bag", _frames(_scenes(3)),
               [(LABEL_TOPIC, 1150 * MS, b"\x00\x01\x00\x00\xff\xff\xff\xff junk")])
    code = main(["eval", "--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--label-topic",
                 LABEL_TOPIC, "--model", str(tiny_onnx_model), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-progress"] + (["--strict"] if strict else []))
    captured = capsys.readouterr()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["errors"]["message"]["first_stamps_ns"] == [1150 * MS]
    if strict:
        assert code == 2 and report["frames"] == 2
        assert captured.err.count("\n") == 1
        assert captured.err.startswith("dice-seg eval: error: /camera/labels at log time "
                                       "1150000000 ns does not deserialise")
        assert "stopped early" in captured.out
    else:
        assert code == 0 and report["frames"] == 3 and captured.err == ""
        assert "skipped 1 frames (message; first at stamps [1150000000] ns)" in captured.out


def test_ctrl_c_writes_partial_report(small_bag, tmp_path, tiny_segmenter, monkeypatch):
    calls = []
    real = tiny_segmenter.segment_batch

    def interrupt_third(images, with_confidence=False):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(images, with_confidence)

    monkeypatch.setattr(tiny_segmenter, "segment_batch", interrupt_third)
    result = _eval(small_bag, tmp_path / "out", tiny_segmenter)
    assert result.stopped_by == "interrupted (Ctrl-C)" and result.error is None
    # The interrupted frame and the pair still waiting in the pairer are scored too.
    assert result.report["frames"] == 4 and result.report["not_evaluated"] == 0
    assert len(calls) == 4
    assert json.loads(result.paths["report"].read_text())["stopped_by"].startswith("interrupted")


def test_labels_outside_class_list(tmp_path, tiny_segmenter):
    rgb, ids = _scenes(1)[0]
    bad = ids.copy()
    bad[0, 0] = 250  # a stray byte in one label
    bag = _bag(tmp_path / "bag", [(1000 * MS, rgb, bad)] + _frames(_scenes(2), start=1100))
    result = _eval(bag, tmp_path / "out", tiny_segmenter)
    assert result.error is None and result.report["frames"] == 2
    error = result.report["errors"]["label_decode"]
    assert error["count"] == 1 and error["first_stamps_ns"] == [1000 * MS]
    assert "/camera/labels at stamp 1000000000" in error["first_message"]
    assert "250" in error["first_message"]
    strict = _eval(bag, tmp_path / "strict", tiny_segmenter, strict=True)
    # Stopped at 1000 ms; the 1100 ms pair, already read, is scored; 1200 ms is not.
    assert isinstance(strict.error, ValueError) and strict.report["frames"] == 1
    assert "/camera/labels at stamp 1000000000" in str(strict.error)


def test_label_and_image_sizes_differ(tmp_path, tiny_segmenter):
    rgb, ids = _scenes(1)[0]
    bag = _bag(tmp_path / "bag", [(1000 * MS, rgb, ids[:60, :80])])
    result = _eval(bag, tmp_path / "out", tiny_segmenter)
    # The only frame is skipped, so the run scored nothing: an error that says why.
    assert isinstance(result.error, ValueError) and "1 frames skipped" in str(result.error)
    message = result.report["errors"]["size_mismatch"]["first_message"]
    assert "80x60" in message and "160x120" in message and "1000000000" in message


def test_zero_pairs_exit_2_with_a_hint(tmp_path, tiny_onnx_model, capsys):
    rgb, ids = _scenes(1)[0]
    bag = _bag(tmp_path / "bag", [], [(IMAGE_TOPIC, 1000 * MS, image_msg(rgb, 1000 * MS)),
                                      (LABEL_TOPIC, 1050 * MS,
                                       image_msg(ids, 1050 * MS, "mono8"))])
    args = ["eval", "--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--label-topic",
            LABEL_TOPIC, "--model", str(tiny_onnx_model), "--out", str(tmp_path / "out"),
            "--no-progress"]
    assert main(args) == 2
    assert "raise --max-offset-ms" in capsys.readouterr().err
    assert main(args + ["--max-offset-ms", "60"]) == 0


def test_missing_topic_lists_topics(small_bag, tmp_path, tiny_segmenter):
    with pytest.raises(BagError, match=r"'/cam/img'.*/camera/camera_info.*/camera/labels"):
        _eval(small_bag, tmp_path / "out", tiny_segmenter, image_topic="/cam/img")


def test_wrong_message_type(small_bag, tmp_path, tiny_segmenter):
    with pytest.raises(BagError, match=r"camera_info.*CameraInfo.*expected"):
        _eval(small_bag, tmp_path / "out", tiny_segmenter, label_topic=INFO_TOPIC)


def test_bad_options(small_bag, tmp_path, tiny_segmenter):
    with pytest.raises(ValueError, match="same"):
        _eval(small_bag, tmp_path, tiny_segmenter, label_topic=IMAGE_TOPIC)
    with pytest.raises(ValueError, match="batch size"):
        _eval(small_bag, tmp_path, tiny_segmenter, batch_size=0)


@pytest.mark.parametrize("case", ["missing_bag", "truncated_bag", "missing_model", "topic"])
def test_cli_errors_exit_2(case, small_bag, tmp_path, tiny_onnx_model, capsys):
    bag, model, topic = small_bag, tiny_onnx_model, IMAGE_TOPIC
    if case == "missing_bag":
        bag = tmp_path / "no_bag"
    elif case == "truncated_bag":
        bag = tmp_path / "cut.mcap"
        (mcap,) = small_bag.glob("*.mcap")
        bag.write_bytes(mcap.read_bytes()[:5000])
    elif case == "missing_model":
        model = tmp_path / "gone.onnx"
    else:
        topic = "/nope"
    code = main(["eval", "--bag", str(bag), "--image-topic", topic, "--label-topic",
                 LABEL_TOPIC, "--model", str(model), "--out", str(tmp_path / "out"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("dice-seg eval: error: ")
    expected = {"missing_bag": "no_bag", "truncated_bag": "cut.mcap",
                "missing_model": "gone.onnx", "topic": "/camera/labels"}[case]
    assert expected in err


def test_make_bag_cli_writes_a_real_looking_recording(tmp_path, capsys):
    out = tmp_path / "made"
    assert main(["make-bag", "--out", str(out), "--frames", "2", "--width", "64", "--height",
                 "48", "--fps", "5", "--storage", "sqlite3"]) == 0
    assert "dice-seg eval --bag" in capsys.readouterr().out
    with BagReader(out) as bag:
        assert bag.topics() == {IMAGE_TOPIC: "sensor_msgs/msg/Image",
                                LABEL_TOPIC: "sensor_msgs/msg/Image",
                                INFO_TOPIC: "sensor_msgs/msg/CameraInfo"}
        messages = list(bag.messages([IMAGE_TOPIC, LABEL_TOPIC, INFO_TOPIC]))
    assert len(messages) == 6
    stamps = {m.topic: [] for m in messages}
    for m in messages:
        stamps[m.topic].append(header_stamp_ns(m.msg.header))
        assert m.msg.header.frame_id == "camera_optical_frame"
    assert stamps[IMAGE_TOPIC] == stamps[LABEL_TOPIC] == stamps[INFO_TOPIC]
    assert stamps[IMAGE_TOPIC][1] - stamps[IMAGE_TOPIC][0] == 200 * MS
    info = next(m.msg for m in messages if m.topic == INFO_TOPIC)
    assert (info.width, info.height, info.k[2]) == (64, 48, 31.5)
    label = next(m.msg for m in messages if m.topic == LABEL_TOPIC)
    np.testing.assert_array_equal(label.data.reshape(48, 64), generate_scene(0, 64, 48)[1])


def test_make_bag_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="frames=0"):
        write_synthetic_bag(tmp_path / "x", frames=0)


def test_segmenting_an_empty_topic_is_an_error_and_leaves_no_output_bag(
        tmp_path, tiny_onnx_model, capsys):
    bag = tmp_path / "empty"
    with BagWriter(bag) as writer:
        writer.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
    out = tmp_path / "out"
    argv = ["eval", "--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--model",
            str(tiny_onnx_model), "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"no image on {IMAGE_TOPIC}" in err and len(err.splitlines()) == 1
    assert not (out / "output_bag").exists()
