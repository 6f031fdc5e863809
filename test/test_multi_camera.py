"""Many cameras, one network: per-camera latest-frame slots and one batch per cycle."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import image_msg

from dice_seg_ros.image_conversion import msg_to_rgb
from dice_seg_ros.multi_camera import CameraSlots, MultiCameraWorker

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


def test_one_batch_per_cycle_gives_each_camera_its_own_mask(tiny_segmenter):
    counting = CountingSegmenter(tiny_segmenter)
    published = []
    worker = MultiCameraWorker(counting, ["a", "b", "c"], decode=msg_to_rgb,
                               publish=lambda cam, msg, seg: published.append((cam, msg, seg)),
                               with_confidence=lambda: True)
    images = {"a": RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8),
              "c": RNG.integers(0, 256, (90, 120, 3), dtype=np.uint8)}
    for stamp, (camera, image) in enumerate(images.items()):
        worker.submit(camera, image_msg(image, stamp))
    results = worker.step(timeout=0)
    assert counting.batches == [2] and list(results) == ["a", "c"]
    for camera, msg, seg in published:
        single = tiny_segmenter.segment(images[camera], with_confidence=True)
        np.testing.assert_array_equal(seg.class_ids, single.class_ids)
        assert seg.confidence.shape == images[camera].shape[:2]
        assert msg.header.stamp.sec == 0 and results[camera] is seg
    assert worker.cycles == 1 and worker.step(timeout=0) == {}


def test_a_bad_frame_is_reported_and_the_other_cameras_still_run(tiny_segmenter):
    errors, published = [], []
    worker = MultiCameraWorker(tiny_segmenter, ["good", "bad"], decode=msg_to_rgb,
                               publish=lambda cam, msg, seg: published.append(cam),
                               on_error=lambda cam, exc: errors.append((cam, exc)))
    worker.submit("good", image_msg(np.zeros((8, 8, 3), np.uint8), 1))
    worker.submit("bad", image_msg(np.zeros((8, 8, 3), np.uint8), 2, encoding="no_such_encoding"))
    worker.step(timeout=0)
    assert published == ["good"]
    assert [cam for cam, _ in errors] == ["bad"] and "no_such_encoding" in str(errors[0][1])
    assert worker.errors == 1


def test_worker_thread_runs_until_stopped(tiny_segmenter):
    done = threading.Event()
    worker = MultiCameraWorker(tiny_segmenter, ["a"], decode=msg_to_rgb,
                               publish=lambda cam, msg, seg: done.set())
    worker.start()
    worker.submit("a", image_msg(np.zeros((8, 8, 3), np.uint8), 1))
    assert done.wait(timeout=10)
    worker.stop()
    assert worker.cycles == 1 and worker.slots.closed
