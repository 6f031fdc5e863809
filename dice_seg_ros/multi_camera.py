"""Many cameras, one network: the newest frame of each camera segmented as one batch.

A node serving several cameras keeps one latest-frame slot per camera (a slow
model never builds a queue, and each camera's mask is at most one cycle old)
and one worker that, each cycle, takes whatever frames are waiting -- at most
one per camera -- and runs them through ``Segmenter.segment_batch`` in a single
network call. One session and one set of weights serve all cameras, and the
batch amortises the per-call cost that N separate nodes would each pay (and
on a GPU, N separate processes contend for the device). ROS-free: callers pass
a ``decode`` (message -> RGB array) and a ``publish`` callable.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from dice_seg_ros.inference import Segmentation


class CameraSlots:
    """One thread-safe latest-frame slot per camera, emptied together.

    Args:
        cameras: camera names (e.g. their namespaces), in batch order.

    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be distinct names, at least one; got "
                             f"{list(cameras)}")
        self.cameras = tuple(cameras)
        self._cond = threading.Condition()
        self._items: dict[str, Any] = {}
        self._closed = False
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

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Wake a waiting ``take_all`` and make later ones return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class MultiCameraWorker:
    """Segment the newest frame of every camera in one batch per cycle.

    Args:
        segmenter: an ``inference.Segmenter`` (anything with ``segment_batch``).
        cameras: camera names, in batch order.
        decode: turns a frame message into an ``(H, W, 3)`` uint8 RGB array.
        publish: called as ``publish(camera, msg, segmentation)`` for each frame
            of a cycle, in the worker thread.
        with_confidence: called each cycle; whether to compute confidence.
        on_error: called with ``(camera or None, exception)``; None when the
            batch failed as a whole.

    """

    def __init__(self, segmenter: Any, cameras: Sequence[str],
                 decode: Callable[[Any], np.ndarray],
                 publish: Callable[[str, Any, Segmentation], None],
                 with_confidence: Callable[[], bool] = lambda: False,
                 on_error: Callable[[str | None, Exception], None] | None = None) -> None:
        self.segmenter = segmenter
        self.slots = CameraSlots(cameras)
        self._decode = decode
        self._publish = publish
        self._with_confidence = with_confidence
        self._on_error = on_error
        self.errors = 0
        self.cycles = 0
        self.last_cycle_ms = 0.0
        self._thread: threading.Thread | None = None

    def submit(self, camera: str, msg: Any) -> None:
        """Offer ``camera``'s new frame (from its subscription callback); never blocks."""
        self.slots.put(camera, msg)

    def _fail(self, camera: str | None, exc: Exception) -> None:
        """Count one failure and report it."""
        self.errors += 1
        if self._on_error is not None:
            self._on_error(camera, exc)

    def step(self, timeout: float | None = None) -> dict[str, Segmentation]:
        """Run one cycle: decode, one batched network call, publish; return results by camera.

        A frame that cannot be decoded is reported and left out; the rest still run.
        """
        msgs = self.slots.take_all(timeout)
        if not msgs:
            return {}
        start = time.perf_counter()
        frames = {}
        for camera, msg in msgs.items():
            try:
                frames[camera] = self._decode(msg)
            except Exception as exc:  # noqa: BLE001 - one bad camera must not stop the others
                self._fail(camera, exc)
        if not frames:
            return {}
        try:
            results = self.segmenter.segment_batch(list(frames.values()),
                                                   self._with_confidence())
        except Exception as exc:  # noqa: BLE001 - one bad cycle must not stop the node
            self._fail(None, exc)
            return {}
        by_camera = dict(zip(frames, results))
        for camera, segmentation in by_camera.items():
            try:
                self._publish(camera, msgs[camera], segmentation)
            except Exception as exc:  # noqa: BLE001
                self._fail(camera, exc)
        self.cycles += 1
        self.last_cycle_ms = (time.perf_counter() - start) * 1000.0
        return by_camera

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="multi_camera_worker",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Run cycles until ``stop``."""
        while not self.slots.closed:
            self.step(timeout=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker thread after the cycle in progress (waits up to ``timeout`` s)."""
        self.slots.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
