"""ROS-free core of the segmentation node: frame in, messages out.

The node only moves messages between rclpy and this module, so everything here
runs and is tested without ROS, with rosbags message classes standing in for
rclpy's. Message classes are passed in, never imported: the same code builds
``sensor_msgs/Image`` for rclpy and for rosbags.

Frames go through a one-element *latest-frame slot*: the subscription callback
overwrites whatever frame is still waiting and a single worker thread always
takes the newest one, so a slow model never builds a queue and a published mask
is at most one inference old. Overwritten frames are counted as dropped.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dice_seg_ros.classes import ClassSet
from dice_seg_ros.ros.diagnostics import (ESTIMATE_KEY, LEVEL_ERROR, LEVEL_OK, LEVEL_STALE,
                                          LEVEL_WARN, StatusData, estimate_level, format_value)
from dice_seg_ros.runtime.image_conversion import colorize, msg_to_rgb, numpy_to_image, overlay
from dice_seg_ros.runtime.stage_latency import StageLatency

STAGES = ("decode", "pre", "infer", "post", "publish")


def class_table_json(classes: ClassSet) -> str:
    """Return the class table as JSON: ``{"classes": [{id, name, color, drivable}], ...}``.

    The fallback payload of ``~/class_table`` (std_msgs/String) where
    vision_msgs is not installed; ids are mask values, colours RGB 0..255.
    """
    return json.dumps({
        "classes": [{"id": i, "name": name, "color": [int(c) for c in classes.colors[i]],
                     "drivable": bool(classes.drivable[i])}
                    for i, name in enumerate(classes.names)],
        "ignore_index": int(classes.ignore_index)})


def label_info(classes: ClassSet, header: Any, label_info_cls: type,
               vision_class_cls: type) -> Any:
    """Build a ``vision_msgs/LabelInfo`` mapping each mask value to its class name."""
    return label_info_cls(header=header, threshold=0.0, class_map=[
        vision_class_cls(class_id=i, class_name=name) for i, name in enumerate(classes.names)])


def with_header(msg: Any, header: Any) -> Any:
    """Return a shallow copy of ``msg`` (e.g. CameraInfo) carrying ``header``."""
    out = copy.copy(msg)
    out.header = header
    return out


def engine_cache_dir(configured: str, node_name: str) -> Path:
    """Return the TensorRT engine cache folder of one node instance.

    ``configured`` wins when set; otherwise the fully qualified ``node_name``
    (e.g. ``/front/dice_seg``) picks a folder under ``~/.cache/dice_seg_ros/tensorrt``
    so instances never overwrite each other's engines.
    """
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "dice_seg_ros" / "tensorrt" / node_name.strip("/")


@dataclass(frozen=True)
class OutputFlags:
    """Which optional outputs to compute for a frame (someone subscribes to them)."""

    color: bool = False
    overlay: bool = False
    confidence: bool = False


@dataclass
class FrameResult:
    """Messages made from one camera frame, each carrying the frame's header.

    Attributes:
        header: the input message's header (stamp and frame_id), unchanged.
        mask: mono8 class-id image.
        color: rgb8 class-colour image, or None when not requested.
        overlay: rgb8 camera/colour blend, or None when not requested.
        confidence: 32FC1 top-class probability, or None when not requested.
        estimated_dice: the frame's label-free estimated mean Dice (0..1), or None
            when the model has no calibration.
        class_ids: the ``(H, W)`` uint8 mask itself, for outputs made after inference
            (the traversability grid).
        timings_ms: per-stage wall time in milliseconds (decode, pre, infer, post,
            publish); "publish" covers building the messages and, once the worker
            has published them, publishing.

    """

    header: Any
    mask: Any
    color: Any = None
    overlay: Any = None
    confidence: Any = None
    estimated_dice: float | None = None
    class_ids: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _ms_since(start: float) -> float:
    """Return milliseconds elapsed since ``start`` (a time.perf_counter value)."""
    return (time.perf_counter() - start) * 1000.0


class FrameProcessor:
    """Turn one Image/CompressedImage message into mask messages.

    Args:
        segmenter: an ``inference.Segmenter`` (or any object with ``meta`` and
            ``segment(rgb, with_confidence)`` returning a Segmentation).
        classes: class names and colours; must match the model's classes.
        image_type: the ``sensor_msgs/Image`` class to build outputs with.
        overlay_alpha: weight of the colour mask in the overlay, 0..1.

    Raises:
        ModelError: if the model's classes differ from ``classes``.

    """

    def __init__(self, segmenter: Any, classes: ClassSet, image_type: type,
                 overlay_alpha: float = 0.5) -> None:
        segmenter.meta.check_classes(classes.names, source="segmentation model")
        self.segmenter = segmenter
        self.classes = classes
        self.image_type = image_type
        self.overlay_alpha = overlay_alpha
        self._palette = classes.palette()

    def process(self, msg: Any, flags: OutputFlags) -> FrameResult:
        """Decode, segment and convert one frame; "publish" timing so far is message building.

        Raises:
            ImageEncodingError: if the message's encoding or size is unusable.

        """
        start = time.perf_counter()
        rgb = msg_to_rgb(msg)
        decode_ms = _ms_since(start)
        seg = self.segmenter.segment(rgb, with_confidence=flags.confidence)
        return self._result(msg.header, rgb, seg, flags, decode_ms)

    def process_batch(self, msgs: Sequence[Any], flags: Sequence[OutputFlags]
                      ) -> list[FrameResult | Exception]:
        """Decode several frames, segment them in one network call, convert each.

        ``flags[i]`` says which outputs frame ``i`` wants. A frame that cannot be
        decoded gets its exception in its place and the others still run; an
        error of the network call itself propagates.
        """
        results: list[FrameResult | Exception | None] = [None] * len(msgs)
        decoded = []  # (index, rgb, decode ms)
        for index, msg in enumerate(msgs):
            start = time.perf_counter()
            try:
                decoded.append((index, msg_to_rgb(msg), _ms_since(start)))
            except Exception as exc:  # noqa: BLE001 - one bad camera must not stop the others
                results[index] = exc
        if decoded:
            confidence = any(flags[index].confidence for index, _, _ in decoded)
            segs = self.segmenter.segment_batch([rgb for _, rgb, _ in decoded], confidence)
            for (index, rgb, decode_ms), seg in zip(decoded, segs):
                results[index] = self._result(msgs[index].header, rgb, seg, flags[index],
                                              decode_ms)
        return results

    def _result(self, header: Any, rgb: np.ndarray, seg: Any, flags: OutputFlags,
                decode_ms: float) -> FrameResult:
        """Build the output messages of one segmented frame, with its stage timings."""
        start = time.perf_counter()
        result = self._messages(header, rgb, seg, flags)
        result.timings_ms = {"decode": decode_ms, **seg.timings_ms,
                             "publish": _ms_since(start)}
        return result

    def _messages(self, header: Any, rgb: np.ndarray, seg: Any,
                  flags: OutputFlags) -> FrameResult:
        """Build the requested output messages with the input header."""
        result = FrameResult(header=header,
                             mask=numpy_to_image(seg.class_ids, "mono8", header, self.image_type),
                             estimated_dice=seg.estimated_dice, class_ids=seg.class_ids)
        if flags.color or flags.overlay:
            color = colorize(seg.class_ids, self._palette)
            if flags.color:
                result.color = numpy_to_image(color, "rgb8", header, self.image_type)
            if flags.overlay:
                blend = overlay(rgb, color, self.overlay_alpha)
                result.overlay = numpy_to_image(blend, "rgb8", header, self.image_type)
        if flags.confidence and seg.confidence is not None:
            # Segmenter gives float32 already; copy=False avoids a per-frame copy then.
            result.confidence = numpy_to_image(seg.confidence.astype(np.float32, copy=False),
                                               "32FC1", header, self.image_type)
        return result


class EstimatedDiceTracker:
    """One camera's label-free estimated mean Dice: per frame, windowed mean, statuses.

    Fed from the worker thread (``add``) and read from the diagnostics timer
    (``status``), hence the lock.

    Args:
        window: frames averaged by the windowed mean.
        calibration_file: the calibration the estimates come from (named in diagnostics).
        warn_below: windowed mean under which the status is WARN (0..1).
        error_below: windowed mean under which the status is ERROR (0..1).
        name: diagnostics status name.

    """

    def __init__(self, window: int, calibration_file: str, warn_below: float,
                 error_below: float, name: str = "dice_seg_ros: estimated dice") -> None:
        if window < 1:
            raise ValueError(f"estimated Dice window must be >= 1 frame, got {window}")
        self.calibration_file = calibration_file
        self.warn_below = warn_below
        self.error_below = error_below
        self.name = name
        self.frames = 0
        self._values: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, estimate: float) -> float:
        """Add one frame's estimate (0..1); return the mean over the window."""
        with self._lock:
            self._values.append(float(estimate))
            self.frames += 1
            return float(np.mean(self._values))

    def _values_of(self, last: float, mean: float, count: int) -> dict[str, str]:
        """Return the diagnostics key-values common to both statuses."""
        return {ESTIMATE_KEY: format_value(last, 6), "estimated_dice_mean": format_value(mean),
                "window_frames": str(count), "frames": str(self.frames),
                "estimated_dice_warn": format_value(self.warn_below),
                "estimated_dice_error": format_value(self.error_below),
                "calibration": self.calibration_file}

    def frame_status(self, estimate: float) -> StatusData:
        """Return the status of one frame's estimate (sent with the frame's header).

        Its level compares the frame's own estimate with the thresholds; the
        value under ``ESTIMATE_KEY`` has 6 decimals.
        """
        with self._lock:
            mean, count = float(np.mean(self._values or [np.nan])), len(self._values)
        level, message = estimate_level(estimate, self.warn_below, self.error_below,
                                        "frame estimated mean Dice")
        return StatusData(name=self.name, level=level, message=message,
                          hardware_id="estimated_dice",
                          values=self._values_of(estimate, mean, count))

    def status(self) -> StatusData:
        """Return the periodic status: level from the windowed mean, STALE before any frame."""
        with self._lock:
            values = list(self._values)
        if not values:
            return StatusData(name=self.name, level=LEVEL_STALE,
                              message="no estimated Dice yet (no frame segmented)",
                              hardware_id="estimated_dice",
                              values=self._values_of(np.nan, np.nan, 0))
        mean = float(np.mean(values))
        level, message = estimate_level(mean, self.warn_below, self.error_below,
                                        f"estimated mean Dice over {len(values)} frames")
        return StatusData(name=self.name, level=level, message=message,
                          hardware_id="estimated_dice",
                          values=self._values_of(values[-1], mean, len(values)))


class ClosableSlot:
    """Base of the latest-frame slots: a condition to wait on, and ``close`` to end the waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Wake any waiting taker and make later takes return at once, empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class SlotWorker:
    """Base of the segmentation workers: run ``step`` in a daemon thread until the slot closes.

    Args:
        slot: the worker's frame slot(s); closing it wakes a waiting ``step`` and ends the loop.
        thread_name: name of the worker thread (seen in profilers and thread dumps).

    """

    def __init__(self, slot: ClosableSlot, thread_name: str) -> None:
        self._slot = slot
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    def step(self, timeout: float | None = None) -> Any:
        """Process the frame(s) waiting in the slot, waiting up to ``timeout`` s for one."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Step until ``stop``; the timeout lets a step notice the slot closing."""
        while not self._slot.closed:
            self.step(timeout=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker thread after the step in progress (waits up to ``timeout`` s)."""
        self._slot.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class LatestFrameSlot(ClosableSlot):
    """A thread-safe slot holding only the newest unprocessed frame.

    ``put`` replaces a waiting frame (counted in ``dropped``) instead of queueing
    it, so the consumer always gets the newest frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self._item: Any = None
        self._full = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; return True if it replaced (dropped) a waiting frame."""
        with self._cond:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """Return the newest frame, waiting up to ``timeout`` s; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item


class PipelineStats:
    """Frame rate and mean per-stage latency over recent frames.

    Args:
        fps_window_s: frames finished within this many seconds count towards fps.
        latency_frames: number of recent frames averaged for latency.
        clock: monotonic time source in seconds (injectable for tests).

    """

    def __init__(self, fps_window_s: float = 5.0, latency_frames: int = 30,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_s = fps_window_s
        self._done: deque[float] = deque()
        self._latency = StageLatency(STAGES, window=latency_frames)
        self._lock = threading.Lock()

    def record(self, timings_ms: Mapping[str, float]) -> None:
        """Count one finished frame with its stage timings in milliseconds."""
        with self._lock:
            self._done.append(self._clock())
            self._latency.end_frame(timings_ms)

    @property
    def frames(self) -> int:
        """Number of frames recorded since start."""
        return self._latency.frames

    def fps(self) -> float:
        """Return finished frames per second over the last ``fps_window_s`` seconds.

        Measured up to *now*, so the rate falls to 0 when frames stop coming.
        """
        with self._lock:
            now = self._clock()
            while self._done and now - self._done[0] > self._window_s:
                self._done.popleft()
            if len(self._done) < 2:
                return 0.0
            span = now - self._done[0]
            return (len(self._done) - 1) / span if span > 0 else 0.0

    def mean_latency_ms(self) -> dict[str, float]:
        """Return the mean milliseconds per stage (and "total") over recent frames."""
        with self._lock:
            return self._latency.mean_ms()


class SegmentationWorker(SlotWorker):
    """Run a FrameProcessor on the newest frame in a background thread.

    Args:
        processor: turns a frame message into a FrameResult.
        publish: called with each FrameResult (in the worker thread).
        flags: called before each frame to learn which outputs are wanted.
        on_error: called with the exception when a frame cannot be processed.
        stats: where finished frames are counted (a new PipelineStats if None).

    """

    def __init__(self, processor: FrameProcessor, publish: Callable[[FrameResult], None],
                 flags: Callable[[], OutputFlags] = OutputFlags,
                 on_error: Callable[[Exception], None] | None = None,
                 stats: PipelineStats | None = None) -> None:
        self.slot = LatestFrameSlot()
        super().__init__(self.slot, "segmentation_worker")
        self.processor = processor
        self._publish = publish
        self._flags = flags
        self._on_error = on_error
        self.stats = stats if stats is not None else PipelineStats()
        self.errors = 0
        self.last_error: str | None = None

    @property
    def dropped(self) -> int:
        """Frames overwritten in the slot before the model got to them."""
        return self.slot.dropped

    def submit(self, msg: Any) -> None:
        """Offer a new frame (from the subscription callback); never blocks on the model."""
        self.slot.put(msg)

    def step(self, timeout: float | None = None) -> FrameResult | None:
        """Process and publish the newest waiting frame; None if none came or it failed."""
        msg = self.slot.take(timeout)
        if msg is None:
            return None
        try:
            result = self.processor.process(msg, self._flags())
            start = time.perf_counter()
            self._publish(result)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self._on_error is not None:
                self._on_error(exc)
            return None
        result.timings_ms["publish"] += _ms_since(start)
        self.last_error = None
        self.stats.record(result.timings_ms)
        return result

    def status(self, min_fps: float, name: str = "dice_seg_ros: segmentation") -> StatusData:
        """Return the diagnostics status: fps, latency per stage, drops, back end."""
        return pipeline_status(name, self.processor.segmenter, self.stats, min_fps,
                               dropped=self.dropped, errors=self.errors,
                               last_error=self.last_error)


def pipeline_status(name: str, segmenter: Any, stats: PipelineStats, min_fps: float,
                    dropped: int, errors: int, last_error: str | None) -> StatusData:
    """Return one camera's diagnostics status: fps, latency per stage, drops, back end.

    ERROR while the last frame failed, WARN before the first frame or under
    ``min_fps`` (Hz), else OK.
    """
    fps = stats.fps()
    latency = stats.mean_latency_ms()
    values = {"backend": str(getattr(segmenter, "backend", "")),
              "device": str(getattr(segmenter, "device", "")),
              "fps": format_value(fps, 2), "min_fps": format_value(min_fps, 2),
              "frames": str(stats.frames), "dropped_frames": str(dropped),
              "errors": str(errors)}
    values.update({f"latency_{stage}_ms": format_value(ms, 2) for stage, ms in latency.items()})
    if last_error is not None:
        level, message = LEVEL_ERROR, f"last frame failed: {last_error}"
    elif stats.frames == 0:
        level, message = LEVEL_WARN, "no image received yet"
    elif fps < min_fps:
        level, message = LEVEL_WARN, f"{fps:.1f} fps is under min_fps {min_fps:.1f}"
    else:
        level, message = LEVEL_OK, f"{fps:.1f} fps"
    return StatusData(name=name, level=level, message=message,
                      hardware_id=f"{values['backend']}:{values['device']}", values=values)
