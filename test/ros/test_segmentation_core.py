"""Segmentation node core without ROS: rosbags messages in, mask messages out."""

import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from conftest import TS, shipped_model_or_skip

from dice_seg_ros.classes import load_classes
from dice_seg_ros.errors import ImageEncodingError, ModelError
from dice_seg_ros.ros.diagnostics import (LEVEL_ERROR, LEVEL_OK, LEVEL_WARN, StatusData,
                                          diagnostic_array)
from dice_seg_ros.ros.segmentation_core import (STAGES, FrameProcessor, OutputFlags,
                                                PipelineStats, SegmentationWorker)
from dice_seg_ros.runtime.image_conversion import (image_to_numpy, numpy_to_compressed,
                                                   numpy_to_image)
from dice_seg_ros.runtime.model_meta import ModelMeta

Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
CLASSES = load_classes()


@dataclass
class FakeSegmentation:
    class_ids: np.ndarray
    confidence: np.ndarray | None
    timings_ms: dict = field(default_factory=dict)
    estimated_dice: float | None = None


class FakeSegmenter:
    """Class id = red channel // 43 (0..5); optional delay to act as a slow model."""

    backend = "fake"
    device = "cpu"

    def __init__(self, delay_s=0.0, class_names=CLASSES.names):
        self.meta = ModelMeta(16, 16, (0.5,) * 3, (0.25,) * 3, tuple(class_names), "fake")
        self.delay_s = delay_s
        self.calls = []

    def segment(self, rgb, with_confidence=False):
        self.calls.append((int(rgb[0, 0, 1]), with_confidence))
        time.sleep(self.delay_s)
        ids = (rgb[..., 0] // 43).astype(np.uint8)
        conf = np.full(ids.shape, 0.75, np.float32) if with_confidence else None
        return FakeSegmentation(ids, conf, {"pre": 1.0, "infer": 2.0, "post": 3.0})

    def segment_batch(self, images, with_confidence=False):
        return [self.segment(rgb, with_confidence) for rgb in images]


def header(sec=12, nanosec=345, frame_id="camera"):
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def rgb_frame(index=0, width=32, height=24):
    rng = np.random.default_rng(index)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb[0, 0, 1] = index  # lets the fake segmenter tell which frame it got
    return rgb


def image_msg(index=0, **kw):
    return numpy_to_image(rgb_frame(index, **kw), "rgb8", header(sec=index), Image)


def roundtrip(msg, typename):
    return TS.deserialize_cdr(TS.serialize_cdr(msg, typename), typename)


ALL = OutputFlags(color=True, overlay=True, confidence=True)


def process(processor, msg, flags):
    """Run one frame through the processor as a batch of one, as the node's worker does."""
    (result,) = processor.process_batch([msg], [flags])
    return result


def single_worker(processor, publish=lambda result: None, **kw):
    """Return a worker serving one camera (named ""), as the node runs for one image topic."""
    return SegmentationWorker(processor, [""], publish=lambda camera, result: publish(result),
                              **kw)


def test_outputs_carry_input_header_and_expected_pixels():
    msg = image_msg(3)
    proc = FrameProcessor(FakeSegmenter(), CLASSES, Image, overlay_alpha=0.25)
    result = process(proc, msg, ALL)
    rgb = rgb_frame(3)
    ids = rgb[..., 0] // 43
    for out in (result.mask, result.color, result.overlay, result.confidence):
        assert out.header.stamp.sec == 3 and out.header.frame_id == "camera"
        assert (out.width, out.height) == (32, 24)
    assert result.mask.encoding == "mono8"
    np.testing.assert_array_equal(image_to_numpy(result.mask), ids)
    color = CLASSES.palette()[ids]
    np.testing.assert_array_equal(image_to_numpy(result.color), color)
    blend = image_to_numpy(result.overlay).astype(int)
    expected = 0.75 * rgb + 0.25 * color
    assert np.abs(blend - expected).max() <= 1
    assert result.confidence.encoding == "32FC1"
    np.testing.assert_allclose(image_to_numpy(result.confidence), 0.75)
    assert set(result.timings_ms) == set(STAGES)
    assert result.timings_ms["infer"] == 2.0


def test_cdr_roundtrip_in_and_out():
    msg = roundtrip(image_msg(5), "sensor_msgs/msg/Image")
    result = process(FrameProcessor(FakeSegmenter(), CLASSES, Image), msg, ALL)
    for out in (result.mask, result.color, result.overlay, result.confidence):
        back = roundtrip(out, "sensor_msgs/msg/Image")
        assert back.header.stamp.sec == 5 and back.header.stamp.nanosec == 345
        assert back.header.frame_id == "camera"
        np.testing.assert_array_equal(image_to_numpy(back), image_to_numpy(out))


def test_compressed_input():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, 16:, 0] = 250  # class 5 on the right, class 0 on the left
    msg = numpy_to_compressed(rgb, header(), CompressedImage, fmt="png")
    result = process(FrameProcessor(FakeSegmenter(), CLASSES, Image),
                     roundtrip(msg, "sensor_msgs/msg/CompressedImage"), OutputFlags())
    ids = image_to_numpy(result.mask)
    assert (ids[:, :16] == 0).all() and (ids[:, 16:] == 5).all()


def test_optional_outputs_only_when_flagged():
    seg = FakeSegmenter()
    proc = FrameProcessor(seg, CLASSES, Image)
    result = process(proc, image_msg(1), OutputFlags(color=True))
    assert result.color is not None
    assert result.overlay is None and result.confidence is None
    assert seg.calls[-1] == (1, False)
    process(proc, image_msg(2), OutputFlags(confidence=True))
    assert seg.calls[-1] == (2, True)


def test_overlay_alpha_changes_at_run_time():
    proc = FrameProcessor(FakeSegmenter(), CLASSES, Image, overlay_alpha=0.0)
    msg = image_msg(4)
    camera_only = image_to_numpy(process(proc, msg, OutputFlags(overlay=True)).overlay)
    np.testing.assert_array_equal(camera_only, rgb_frame(4))
    proc.overlay_alpha = 1.0
    mask_only = image_to_numpy(process(proc, msg, OutputFlags(overlay=True)).overlay)
    np.testing.assert_array_equal(mask_only, CLASSES.palette()[rgb_frame(4)[..., 0] // 43])


def test_model_with_other_classes_is_refused():
    with pytest.raises(ModelError, match="classes"):
        FrameProcessor(FakeSegmenter(class_names=("a", "b")), CLASSES, Image)


def test_slow_model_gets_newest_frame_and_drops_are_counted():
    seg = FakeSegmenter(delay_s=0.05)
    newest = {"index": -1}
    given = []  # (frame given to the model, newest frame submitted at that moment)
    original = seg.segment

    def segment(rgb, with_confidence=False):
        given.append((int(rgb[0, 0, 1]), newest["index"]))
        return original(rgb, with_confidence)

    seg.segment = segment
    published = []
    worker = single_worker(FrameProcessor(seg, CLASSES, Image), published.append)
    worker.start()
    frames = 30
    for index in range(frames):
        newest["index"] = index
        worker.submit("", image_msg(index, width=8, height=6))
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while (not published or published[-1].header.stamp.sec != frames - 1) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    stamps = [r.header.stamp.sec for r in published]
    assert stamps[-1] == frames - 1, "the newest frame must be processed"
    assert stamps == sorted(set(stamps)), "never an older frame after a newer one"
    assert len(published) < frames / 2, "a slow model must skip frames, not queue them"
    assert worker.slots.dropped[""] == frames - len(published)
    assert worker.stats[""].frames == len(published)
    # The model only ever starts on the newest frame available at that moment
    # (a frame submitted while it was being taken may race by one).
    assert all(newest_at - index <= 1 for index, newest_at in given)


def test_publish_time_includes_the_publish_callback():
    worker = single_worker(FrameProcessor(FakeSegmenter(), CLASSES, Image),
                           lambda result: time.sleep(0.02))
    worker.submit("", image_msg(0, width=8, height=6))
    result = worker.step(timeout=1)[""]
    assert result.timings_ms["publish"] >= 20.0


def test_bad_frame_is_reported_and_worker_continues():
    errors = []
    worker = single_worker(FrameProcessor(FakeSegmenter(), CLASSES, Image),
                           on_error=lambda camera, exc: errors.append(exc))
    bad = Image(header=header(), height=2, width=2, encoding="yuv_weird", is_bigendian=0,
                step=4, data=np.zeros(8, np.uint8))
    worker.submit("", bad)
    assert worker.step(timeout=0) == {}
    assert isinstance(errors[0], ImageEncodingError) and "yuv_weird" in str(errors[0])
    status = worker.status("", min_fps=0.0, name="seg")
    assert status.level == LEVEL_ERROR and "yuv_weird" in status.message
    worker.submit("", image_msg(1))
    assert "" in worker.step(timeout=0)
    assert worker.errors[""] == 1 and worker.last_error[""] is None


def test_flags_are_asked_for_each_frame():
    wanted = [OutputFlags(), OutputFlags(overlay=True)]
    worker = single_worker(FrameProcessor(FakeSegmenter(), CLASSES, Image),
                           flags=lambda camera: wanted.pop(0))
    worker.submit("", image_msg(1))
    assert worker.step(timeout=0)[""].overlay is None
    worker.submit("", image_msg(2))
    assert worker.step(timeout=0)[""].overlay is not None


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_stats_fps_latency_and_decay():
    clock = FakeClock()
    stats = PipelineStats(fps_window_s=5.0, clock=clock)
    assert stats.fps() == 0.0 and stats.mean_latency_ms() == {}
    for _ in range(11):
        stats.record({"decode": 1.0, "pre": 2.0, "infer": 10.0, "post": 3.0, "publish": 4.0})
        clock.now += 0.1
    clock.now -= 0.1
    assert stats.fps() == pytest.approx(10.0)
    latency = stats.mean_latency_ms()
    assert latency["infer"] == 10.0 and latency["total"] == 20.0
    clock.now += 10.0
    assert stats.fps() == 0.0, "fps must fall to 0 when frames stop"


def test_status_levels_against_min_fps():
    clock = FakeClock()
    worker = single_worker(FrameProcessor(FakeSegmenter(), CLASSES, Image))
    worker.stats[""] = PipelineStats(clock=clock)
    assert worker.status("", min_fps=5.0, name="seg").level == LEVEL_WARN  # no image yet
    for index in range(5):
        worker.submit("", image_msg(index))
        worker.submit("", image_msg(index))  # one dropped per pair
        worker.step(timeout=0)
        clock.now += 0.5
    clock.now -= 0.5
    slow = worker.status("", min_fps=5.0, name="seg")
    assert slow.level == LEVEL_WARN and "min_fps" in slow.message
    assert slow.values["fps"] == "2.00" and slow.values["dropped_frames"] == "5"
    assert slow.values["backend"] == "fake" and slow.values["device"] == "cpu"
    assert {f"latency_{s}_ms" for s in STAGES} <= set(slow.values)
    assert worker.status("", min_fps=1.0, name="seg").level == LEVEL_OK


def test_diagnostic_array_with_rosbags_types_roundtrips():
    status = StatusData(name="seg", level=LEVEL_WARN, message="slow", hardware_id="ort:cpu",
                        values={"fps": "1.00"})
    msg = diagnostic_array([status], header(), TS.types["diagnostic_msgs/msg/DiagnosticArray"],
                           TS.types["diagnostic_msgs/msg/DiagnosticStatus"],
                           TS.types["diagnostic_msgs/msg/KeyValue"])
    back = roundtrip(msg, "diagnostic_msgs/msg/DiagnosticArray")
    assert back.status[0].level == 1 and back.status[0].name == "seg"
    assert back.status[0].values[0].key == "fps" and back.status[0].values[0].value == "1.00"


def test_real_segmenter_end_to_end():
    model = shipped_model_or_skip()
    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.runtime.inference import Segmenter
    segmenter = Segmenter(model, backend="ort", device="cpu", threads=1)
    rgb, _ = generate_scene(7, width=96, height=72)
    msg = roundtrip(numpy_to_image(rgb, "rgb8", header(), Image), "sensor_msgs/msg/Image")
    result = process(FrameProcessor(segmenter, CLASSES, Image), msg, ALL)
    direct = segmenter.segment(rgb, with_confidence=True)
    np.testing.assert_array_equal(image_to_numpy(result.mask), direct.class_ids)
    np.testing.assert_allclose(image_to_numpy(result.confidence), direct.confidence, atol=1e-5)
    assert result.mask.header.frame_id == "camera"
    assert set(result.timings_ms) == set(STAGES)


def test_estimated_dice_rides_with_each_frame_single_and_batched(calibrated_tiny_model):
    from dice_seg_ros.runtime.inference import Segmenter

    segmenter = Segmenter(calibrated_tiny_model, device="cpu", threads=1)
    processor = FrameProcessor(segmenter, CLASSES, Image)
    msgs = [image_msg(index) for index in range(3)]
    expected = [segmenter.segment(rgb_frame(index)).estimated_dice for index in range(3)]
    assert all(0.0 <= value < 1.0 for value in expected) and len(set(expected)) > 1
    # Neither path asks for the confidence output: the estimate comes anyway.
    assert process(processor, msgs[0], OutputFlags()).estimated_dice == pytest.approx(expected[0])
    batch = processor.process_batch(msgs, [OutputFlags()] * 3)
    assert [r.estimated_dice for r in batch] == pytest.approx(expected)
    assert all(r.confidence is None for r in batch)
    without = FrameProcessor(Segmenter(calibrated_tiny_model, device="cpu", threads=1,
                                       estimate_dice=False), CLASSES, Image)
    assert process(without, msgs[0], OutputFlags()).estimated_dice is None


def test_estimated_dice_tracker_window_levels_and_calibration_named():
    from dice_seg_ros.ros.diagnostics import ESTIMATE_KEY, LEVEL_STALE
    from dice_seg_ros.ros.segmentation_core import EstimatedDiceTracker

    tracker = EstimatedDiceTracker(3, "/models/net.quality.json", warn_below=0.6,
                                   error_below=0.3, name="cam: estimated dice")
    status = tracker.status()
    assert status.level == LEVEL_STALE and status.values["calibration"] == \
        "/models/net.quality.json"
    assert tracker.add(0.9) == pytest.approx(0.9)
    assert tracker.status().level == LEVEL_OK
    assert tracker.add(0.3) == pytest.approx(0.6)
    assert tracker.add(0.15) == pytest.approx(0.45)  # window mean under warn_below
    status = tracker.status()
    assert status.level == LEVEL_WARN and "estimated_dice_warn 0.600" in status.message
    assert status.values["estimated_dice_mean"] == "0.450"
    assert status.values[ESTIMATE_KEY] == "0.150000" and status.values["window_frames"] == "3"
    assert tracker.add(0.15) == pytest.approx(0.2)  # 0.9 left the 3-frame window
    assert tracker.status().level == LEVEL_ERROR and tracker.frames == 4
    frame = tracker.frame_status(0.7)  # one frame's level is its own estimate's
    assert frame.level == LEVEL_OK and frame.values[ESTIMATE_KEY] == "0.700000"
    tracker.warn_below = tracker.error_below = 0.8  # thresholds change at run time
    assert tracker.frame_status(0.7).level == LEVEL_ERROR
    with pytest.raises(ValueError, match="window must be >= 1"):
        EstimatedDiceTracker(0, "", 0.5, 0.3)
