"""Many cameras, one network: per-camera latest-frame slots, one batch per cycle, topics."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import image_msg

from dice_seg_ros.bags.bag_io import msg_class
from dice_seg_ros.classes import classes_for_model
from dice_seg_ros.ros.diagnostics import LEVEL_ERROR
from dice_seg_ros.ros.multi_camera import CameraTopics, camera_topics
from dice_seg_ros.ros.node_params import SEGMENTATION_PARAMS, spec_map, validate
from dice_seg_ros.ros.segmentation_core import (CameraSlots, FrameProcessor, OutputFlags,
                                                SegmentationWorker)
from dice_seg_ros.runtime.image_conversion import image_to_numpy

Image = msg_class("sensor_msgs/msg/Image")

RNG = np.random.default_rng(11)


class CountingSegmenter:
    """Wraps a Segmenter, recording the size of each network call."""

    def __init__(self, segmenter):
        self.segmenter = segmenter
        self.batches = []

    def segment_batch(self, images, with_confidence=False):
        self.batches.append(len(images))
        return self.segmenter.segment_batch(images, with_confidence)


def test_slots_keep_the_newest_frame_per_camera_and_count_drops():
    slots = CameraSlots(["front", "left", "rear"])
    assert not slots.put("rear", 1)
    assert not slots.put("front", 2)
    assert slots.put("front", 3)
    assert slots.take_all(timeout=0) == {"front": 3, "rear": 1}  # camera order
    assert slots.dropped == {"front": 1, "left": 0, "rear": 0}
    assert slots.take_all(timeout=0.01) == {}
    with pytest.raises(KeyError, match="'top'"):
        slots.put("top", 4)
    with pytest.raises(ValueError, match="distinct"):
        CameraSlots(["a", "a"])


def test_close_wakes_a_waiting_take():
    slots = CameraSlots(["a"])
    got = []
    thread = threading.Thread(target=lambda: got.append(slots.take_all()))
    thread.start()
    slots.close()
    thread.join(timeout=5)
    assert got == [{}] and slots.closed


def processor(segmenter):
    """Return a FrameProcessor on ``segmenter`` with the model's own classes."""
    return FrameProcessor(segmenter, classes_for_model(segmenter.meta.class_names), Image)


def test_one_batch_per_cycle_gives_each_camera_its_own_mask(tiny_segmenter):
    counting = CountingSegmenter(tiny_segmenter)
    counting.meta = tiny_segmenter.meta
    published = []
    wants = {"a": OutputFlags(confidence=True, color=True), "c": OutputFlags()}
    worker = SegmentationWorker(processor(counting), ["a", "b", "c"],
                                publish=lambda cam, result: published.append((cam, result)),
                                flags=wants.get)
    images = {"a": RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8),
              "c": RNG.integers(0, 256, (90, 120, 3), dtype=np.uint8)}
    for stamp, (camera, image) in enumerate(images.items()):
        worker.submit(camera, image_msg(image, stamp * 10**9))
    results = worker.step(timeout=0)
    assert counting.batches == [2] and list(results) == ["a", "c"]
    for stamp, (camera, result) in enumerate(published):
        single = tiny_segmenter.segment(images[camera], with_confidence=True)
        np.testing.assert_array_equal(image_to_numpy(result.mask), single.class_ids)
        assert (result.mask.height, result.mask.width) == images[camera].shape[:2]
        assert result.header.stamp.sec == stamp and results[camera] is result
    assert published[0][1].confidence is not None and published[0][1].color is not None
    assert published[1][1].confidence is None and published[1][1].overlay is None
    assert worker.cycles == 1 and worker.step(timeout=0) == {}
    assert worker.stats["a"].frames == 1 and worker.stats["b"].frames == 0


def test_a_bad_frame_is_reported_and_the_other_cameras_still_run(tiny_segmenter):
    errors, published = [], []
    worker = SegmentationWorker(processor(tiny_segmenter), ["good", "bad"],
                                publish=lambda cam, result: published.append(cam),
                                on_error=lambda cam, exc: errors.append((cam, exc)))
    worker.submit("good", image_msg(np.zeros((8, 8, 3), np.uint8), 1))
    worker.submit("bad", image_msg(np.zeros((8, 8, 3), np.uint8), 2, encoding="no_such_encoding"))
    worker.step(timeout=0)
    assert published == ["good"]
    assert [cam for cam, _ in errors] == ["bad"] and "no_such_encoding" in str(errors[0][1])
    assert worker.errors == {"good": 0, "bad": 1}
    bad = worker.status("bad", min_fps=0.0, name="seg bad")
    assert bad.level == LEVEL_ERROR and "no_such_encoding" in bad.message
    good = worker.status("good", min_fps=0.0, name="seg good")
    assert good.values["frames"] == "1" and good.values["batch_size"] == "2.00"
    assert float(good.values["cycle_ms"]) > 0


def test_drops_are_counted_per_camera(tiny_segmenter):
    worker = SegmentationWorker(processor(tiny_segmenter), ["a", "b"], publish=lambda c, r: None)
    frame = np.zeros((8, 8, 3), np.uint8)
    for stamp in range(3):
        worker.submit("a", image_msg(frame, stamp))
    worker.submit("b", image_msg(frame, 9))
    worker.step(timeout=0)
    assert worker.status("a", 0.0, "a").values["dropped_frames"] == "2"
    assert worker.status("b", 0.0, "b").values["dropped_frames"] == "0"


def test_worker_thread_runs_until_stopped(tiny_segmenter):
    done = threading.Event()
    worker = SegmentationWorker(processor(tiny_segmenter), ["a"],
                                publish=lambda cam, result: done.set())
    worker.start()
    worker.submit("a", image_msg(np.zeros((8, 8, 3), np.uint8), 1))
    assert done.wait(timeout=10)
    worker.stop()
    assert worker.cycles == 1 and worker.slots.closed


def test_camera_topics_put_outputs_under_each_camera_namespace():
    front, rear = camera_topics(["/front/image_raw", "rear/cam/image"], "dice_seg")
    assert front == CameraTopics(camera="/front", image="/front/image_raw",
                                 camera_info="/front/camera_info", outputs="/front/dice_seg")
    assert front.output("mask") == "/front/dice_seg/mask"
    assert rear.outputs == "rear/cam/dice_seg" and rear.camera_info == "rear/cam/camera_info"
    (single,) = camera_topics(["image"], "segmentation_node", compressed=True)
    assert single.image == "image/compressed" and single.output("mask") == "~/mask"
    assert single.camera_info == "camera_info"


@pytest.mark.parametrize("topics, reason", [
    ([], "image_topics is empty"), (["/a/image", ""], "one non-empty topic"),
    (["/front/left", "/front/right"], "its own namespace"), (["/a/"], "non-empty")])
def test_image_topics_are_validated(topics, reason):
    assert reason in validate(spec_map(SEGMENTATION_PARAMS)["image_topics"], topics)


def test_one_camera_on_image_is_the_default():
    assert validate(spec_map(SEGMENTATION_PARAMS)["image_topics"], ["image"]) is None
    assert spec_map(SEGMENTATION_PARAMS)["image_topics"].default == ("image",)
