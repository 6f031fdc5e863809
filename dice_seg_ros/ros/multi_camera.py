"""Many cameras, one network: the newest frame of each camera segmented as one batch.

A node serving several cameras keeps one latest-frame slot per camera (a slow
model never builds a queue, and each camera's mask is at most one cycle old)
and one worker that, each cycle, takes whatever frames are waiting -- at most
one per camera -- and runs them through ``Segmenter.segment_batch`` in a single
network call. One session and one set of weights serve all cameras, and the
batch amortises the per-call cost that N separate nodes would each pay (and
on a GPU, N separate processes contend for the device). Frames become
messages through ``FrameProcessor.process_batch``, the message-building code of
the single-camera node. ROS-free: callers pass a ``publish`` callable.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from dice_seg_ros.ros.diagnostics import StatusData, format_value
from dice_seg_ros.runtime.outputs import camera_namespace
from dice_seg_ros.ros.segmentation_core import (ClosableSlot, FrameProcessor, FrameResult,
                                                OutputFlags, PipelineStats, SlotWorker,
                                                pipeline_status)


@dataclass(frozen=True)
class CameraTopics:
    """Topics of one camera served by a segmentation node (relative names resolve in its ns).

    Attributes:
        camera: the camera's namespace (``/front``), or "" for the node's own.
        image: the subscribed image topic (``.../compressed`` for CompressedImage).
        camera_info: the camera_info topic beside the image topic.
        outputs: prefix of the output topics: ``<camera ns>/<node name>``, or ``~``
            (the node's private namespace) for a camera in the node's own namespace.

    """

    camera: str
    image: str
    camera_info: str
    outputs: str

    def output(self, name: str) -> str:
        """Return the topic of output ``name`` (mask, mask_color, ...) of this camera."""
        return f"{self.outputs}/{name}"


def camera_topics(image_topics: Sequence[str], node_name: str,
                  compressed: bool = False) -> list[CameraTopics]:
    """Return the topics of each camera: ``/front/image_raw`` -> outputs under ``/front/<node>``.

    Outputs follow the single-camera scheme (``~/mask`` of a node in the camera's
    namespace), so one node serving ``/front`` and ``/rear`` publishes what two
    nodes named ``node_name`` in those namespaces would.
    """
    cameras = []
    for topic in image_topics:
        namespace = camera_namespace(topic)
        cameras.append(CameraTopics(
            camera=namespace,
            image=f"{topic}/compressed" if compressed else topic,
            camera_info=f"{namespace}/camera_info" if namespace else "camera_info",
            outputs=f"{namespace}/{node_name}" if namespace else "~"))
    return cameras


class CameraSlots(ClosableSlot):
    """One thread-safe latest-frame slot per camera, emptied together.

    Args:
        cameras: camera names (e.g. their namespaces), in batch order.

    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be distinct names, at least one; got "
                             f"{list(cameras)}")
        super().__init__()
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


class MultiCameraWorker(SlotWorker):
    """Segment the newest frame of every camera in one batch per cycle.

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
        super().__init__(self.slots, "multi_camera_worker")
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
