"""ROS-free core of the segmentation node: frame in, messages out.

The node only moves messages between rclpy and this module, so everything here
runs and is tested without ROS, with rosbags message classes standing in for
rclpy's. Message classes are passed in, never imported: the same code builds
``sensor_msgs/Image`` for rclpy and for rosbags.

Frames go through a *latest-frame slot* per camera: the subscription callback
overwrites whatever frame of its camera is still waiting, and a single worker
thread takes the newest frame of every camera and segments them in one network
call (one camera is a batch of one), so a slow model never builds a queue and a
published mask is at most one cycle old. Overwritten frames are counted as dropped.
One frame's way: node callback -> ``CameraSlots`` -> ``SegmentationWorker`` ->
``FrameProcessor.process_batch`` (decode, ``Segmenter``, messages) -> the node's publish.
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


class CameraSlots:
    """One thread-safe latest-frame slot per camera, emptied together.

    Args:
        cameras: camera names (e.g. their namespaces), in batch order.

    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be distinct names, at least one; got "
                             f"{list(cameras)}")
        self._cond = threading.Condition()
        self._closed = False
        self.cameras = tuple(cameras)
        self._items: dict[str, Any] = {}
        self.dropped = {camera: 0 for camera in self.cameras}

    def put(self, camera: str, item: Any) -> bool:
        """Store ``item`` as ``camera``'s newest frame; True if it replaced (dropped) one.

        Raises:
            KeyError: naming the camera if it is not one of ``cameras``.

        """
        if camera not in self.dropped:
            raise KeyError(f"unknown camera {camera!r}; known: {list(self.cameras)}")
        with self._cond:
            replaced = camera in self._items
            if replaced:
                self.dropped[camera] += 1
            self._items[camera] = item
            self._cond.notify()
            return replaced

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Wake any waiting taker and make later takes return at once, empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take_all(self, timeout: float | None = None) -> dict[str, Any]:
        """Return every waiting frame by camera (in camera order), waiting up to ``timeout`` s.

        Empty on timeout or after ``close``.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout)
            items = {camera: self._items[camera] for camera in self.cameras
                     if camera in self._items}
            self._items.clear()
            return items


class SegmentationWorker:
    """Segment the newest frame of every camera, one batch per cycle, in a background thread.

    One camera is a batch of one. Each camera has a latest-frame slot, so a
    slow model never builds a queue and a mask is at most one cycle old.

    Args:
        processor: the ``FrameProcessor`` whose ``process_batch`` makes the messages.
        cameras: camera names, in batch order.
        publish: called as ``publish(camera, result)`` for each frame of a cycle,
            in the worker thread.
        flags: called as ``flags(camera)`` each cycle: which outputs that camera wants.
        on_error: called with ``(camera or None, exception)``; None when the
            batch failed as a whole.
        cycle_history: cycles averaged for the cycle latency.

    """

    def __init__(self, processor: FrameProcessor, cameras: Sequence[str],
                 publish: Callable[[str, FrameResult], None],
                 flags: Callable[[str], OutputFlags] = lambda camera: OutputFlags(),
                 on_error: Callable[[str | None, Exception], None] | None = None,
                 cycle_history: int = 30) -> None:
        self.slots = CameraSlots(cameras)
        self._thread: threading.Thread | None = None
        self.processor = processor
        self._publish = publish
        self._flags = flags
        self._on_error = on_error
        self.stats = {camera: PipelineStats() for camera in self.slots.cameras}
        self.errors = {camera: 0 for camera in self.slots.cameras}
        self.last_error: dict[str, str | None] = {camera: None for camera in self.slots.cameras}
        self.batch_errors = 0
        self.cycles = 0
        self.last_cycle_ms = 0.0
        self._cycles: deque[tuple[float, int]] = deque(maxlen=cycle_history)  # (ms, size)

    def submit(self, camera: str, msg: Any) -> None:
        """Offer ``camera``'s new frame (from its subscription callback); never blocks."""
        self.slots.put(camera, msg)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="segmentation_worker",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Step until ``stop``; the timeout lets a step notice the slots closing."""
        while not self.slots.closed:
            self.step(timeout=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker thread after the cycle in progress (waits up to ``timeout`` s)."""
        self.slots.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _fail(self, camera: str | None, exc: Exception, cameras: Sequence[str]) -> None:
        """Count one failure against ``cameras`` and report it."""
        for name in cameras:
            self.errors[name] += 1
            self.last_error[name] = f"{type(exc).__name__}: {exc}"
        if camera is None:
            self.batch_errors += 1
        if self._on_error is not None:
            self._on_error(camera, exc)

    def step(self, timeout: float | None = None) -> dict[str, FrameResult]:
        """Run one cycle: decode, one batched network call, publish; return results by camera.

        A frame that cannot be decoded is reported and left out; the rest still run.
        """
        msgs = self.slots.take_all(timeout)
        if not msgs:
            return {}
        start = time.perf_counter()
        cameras = list(msgs)
        try:
            results = self.processor.process_batch([msgs[c] for c in cameras],
                                                   [self._flags(c) for c in cameras])
        except Exception as exc:  # noqa: BLE001 - one bad cycle must not stop the node
            self._fail(None, exc, cameras)
            return {}
        done = {}
        for camera, result in zip(cameras, results):
            if isinstance(result, Exception):
                self._fail(camera, result, [camera])
                continue
            publish_start = time.perf_counter()
            try:
                self._publish(camera, result)
            except Exception as exc:  # noqa: BLE001
                self._fail(camera, exc, [camera])
                continue
            result.timings_ms["publish"] += (time.perf_counter() - publish_start) * 1000.0
            self.last_error[camera] = None
            self.stats[camera].record(result.timings_ms)
            done[camera] = result
        self.cycles += 1
        self.last_cycle_ms = (time.perf_counter() - start) * 1000.0
        self._cycles.append((self.last_cycle_ms, len(cameras)))
        return done

    def status(self, camera: str, min_fps: float, name: str) -> StatusData:
        """Return ``camera``'s diagnostics status, with the batch cycle's latency and size.

        ``cycle_ms`` is the wall time of a whole cycle (what a frame waits from
        leaving its slot to being published); ``batch_size`` the mean cameras per cycle.
        """
        status = pipeline_status(name, self.processor.segmenter, self.stats[camera], min_fps,
                                 dropped=self.slots.dropped[camera],
                                 errors=self.errors[camera],
                                 last_error=self.last_error[camera])
        cycles = list(self._cycles)
        status.values.update({
            "cycle_ms": format_value(float(np.mean([ms for ms, _ in cycles]))
                                     if cycles else float("nan"), 2),
            "batch_size": format_value(float(np.mean([n for _, n in cycles]))
                                       if cycles else float("nan"), 2)})
        return status
