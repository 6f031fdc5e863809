"""ROS-free core of the Dice monitor node: (mask, label) pair in, metrics and messages out.

Scores come from ``metrics.DiceTracker``, the same object ``dice-seg eval``
uses, so the node and the offline evaluation agree on the same frames. Message
classes are passed in (rclpy's or a rosbags typestore's), never imported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dice_seg_ros.classes import ClassSet
from dice_seg_ros.errors import ImageEncodingError
from dice_seg_ros.frame_errors import LABEL, MASK, SIZE, FrameErrors
from dice_seg_ros.image_conversion import check_label_format, image_to_numpy, labels_to_ids
from dice_seg_ros.metrics import DiceTracker, FrameScores, nanmean
from dice_seg_ros.segmentation_core import (LEVEL_ERROR, LEVEL_OK, LEVEL_STALE, LEVEL_WARN,
                                            StatusData, format_value)

TOPICS = ("mask", "labels")
# Rows of the ~/dice Float32MultiArray; columns are the classes.
DICE_ROWS = ("frame", "window", "cumulative", "ema")


def stamp_to_ns(header: Any) -> int:
    """Return a header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def mask_to_ids(msg: Any) -> np.ndarray:
    """Return the ``(H, W)`` uint8 class ids of a mono8/8UC1 mask message.

    Raises:
        ImageEncodingError: if the mask is not a single-channel 8-bit image.

    """
    ids = image_to_numpy(msg)
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise ImageEncodingError(
            f"mask topic: expected mono8/8UC1 class ids, got encoding {msg.encoding!r} "
            f"({msg.width}x{msg.height})")
    return ids


class MonitorCore:
    """Pair-by-pair Dice/IoU with counters, thresholds and report writing.

    Args:
        classes: class names, colours and ignore index.
        label_format: "ids" or "color" (see ``image_conversion.labels_to_ids``).
        window_size: frames pooled by the sliding-window Dice.
        ema_alpha: EMA weight of the newest frame, in (0, 1].
        warn_below: window mean Dice under which the status is WARN.
        error_below: window mean Dice under which the status is ERROR.
        clock: monotonic time source in seconds (injectable for tests).

    """

    def __init__(self, classes: ClassSet, label_format: str = "ids", window_size: int = 30,
                 ema_alpha: float = 0.1, warn_below: float = 0.6, error_below: float = 0.3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.classes = classes
        self.label_format = check_label_format(label_format)
        self.tracker = DiceTracker(classes.num_classes, classes.ignore_index,
                                   window_size=window_size, ema_alpha=ema_alpha)
        self.warn_below = warn_below
        self.error_below = error_below
        self.received = {topic: 0 for topic in TOPICS}
        self.paired = 0
        self.errors = FrameErrors()
        self.last_error: str | None = None
        self._clock = clock
        self._first_pair_s: float | None = None
        self._last_pair_s: float | None = None
        self._score_ms_total = 0.0

    def count(self, topic: str) -> None:
        """Count one message received on ``topic`` ("mask" or "labels")."""
        self.received[topic] += 1

    @property
    def unpaired(self) -> int:
        """Messages received on either topic that were not (yet) part of a pair."""
        return sum(self.received.values()) - len(TOPICS) * self.paired

    def score_pair(self, mask_msg: Any, label_msg: Any) -> FrameScores:
        """Score one prediction/label pair and fold it into every running figure.

        Raises:
            ImageEncodingError: if either image has an unusable encoding.
            ValueError: if the sizes differ or the labels hold unknown class ids.

        """
        start = time.perf_counter()
        self.paired += 1
        try:
            scores = self._score(mask_msg, label_msg)
        except ValueError as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None
        self._score_ms_total += (time.perf_counter() - start) * 1000.0
        now = self._clock()
        self._first_pair_s = now if self._first_pair_s is None else self._first_pair_s
        self._last_pair_s = now
        return scores

    def _score(self, mask_msg: Any, label_msg: Any) -> FrameScores:
        """Convert both messages and update the tracker."""
        stamp = stamp_to_ns(mask_msg.header)
        with self.errors.step(MASK, stamp):
            pred = mask_to_ids(mask_msg)
        with self.errors.step(LABEL, stamp):
            target = labels_to_ids(label_msg, self.label_format, self.classes)
        if pred.shape != target.shape:
            message = (f"mask is {pred.shape[1]}x{pred.shape[0]} but labels are "
                       f"{target.shape[1]}x{target.shape[0]} (stamp {stamp} ns)")
            self.errors.add(SIZE, stamp, message)
            raise ValueError(message)
        return self.tracker.update(pred, target, stamp)

    @property
    def scored(self) -> int:
        """Number of pairs folded into the metrics."""
        return len(self.tracker.frames)

    def window_mean_dice(self) -> float:
        """Mean over classes of the sliding-window Dice (NaN before the first pair)."""
        return nanmean(self.tracker.window_dice())

    def pairs_per_second(self) -> float:
        """Rate of scored pairs between the first and the last one, in Hz."""
        if self._first_pair_s is None or self.scored < 2:
            return 0.0
        span = self._last_pair_s - self._first_pair_s
        return (self.scored - 1) / span if span > 0 else 0.0

    def dice_table(self) -> np.ndarray:
        """Return ``(4, C)`` float32 Dice: rows frame, window, cumulative, ema (DICE_ROWS)."""
        num = self.classes.num_classes
        frame = self.tracker.frames[-1].dice if self.scored else np.full(num, np.nan)
        return np.stack([frame, self.tracker.window_dice(), self.tracker.cumulative.dice(),
                         self.tracker.ema_dice()]).astype(np.float32)

    def mean_dice_msg(self, float32_cls: type) -> Any:
        """Build ``std_msgs/Float32`` holding the window mean Dice."""
        return float32_cls(data=float(self.window_mean_dice()))

    def dice_msg(self, array_cls: type, layout_cls: type, dim_cls: type) -> Any:
        """Build ``std_msgs/Float32MultiArray`` of ``dice_table()``.

        dim[0] is labelled with the row names (frame,window,cumulative,ema) and
        dim[1] with the class names, both comma-separated, so a subscriber can
        index ``data[row * C + class_id]`` by name.
        """
        table = self.dice_table()
        rows, cols = table.shape
        layout = layout_cls(dim=[dim_cls(label=",".join(DICE_ROWS), size=rows, stride=rows * cols),
                                 dim_cls(label=",".join(self.classes.names), size=cols,
                                         stride=cols)],
                            data_offset=0)
        return array_cls(layout=layout, data=table.reshape(-1))

    def _level(self, mean_dice: float) -> tuple[int, str]:
        """Return the status level and message for a window mean Dice."""
        if self.last_error is not None:
            return LEVEL_ERROR, f"last pair failed: {self.last_error}"
        if self.scored == 0:
            return LEVEL_STALE, "no mask/label pair received yet"
        if mean_dice != mean_dice:
            return LEVEL_WARN, "no class present in the window"
        summary = f"window mean Dice {mean_dice:.3f}"
        if mean_dice < self.error_below:
            return LEVEL_ERROR, f"{summary} < error_below {self.error_below:.3f}"
        if mean_dice < self.warn_below:
            return LEVEL_WARN, f"{summary} < warn_below {self.warn_below:.3f}"
        return LEVEL_OK, summary

    def status(self, name: str = "dice_seg_ros: dice monitor") -> StatusData:
        """Return the diagnostics status with per-class Dice/IoU as key-values."""
        table = self.dice_table()
        window_iou = self.tracker.window_iou()
        mean_dice = self.window_mean_dice()
        level, message = self._level(mean_dice)
        values = {"pairs": str(self.scored), "unpaired": str(self.unpaired),
                  "received_mask": str(self.received["mask"]),
                  "received_labels": str(self.received["labels"]),
                  "errors": str(self.errors.total),
                  "mean_dice_window": format_value(mean_dice),
                  "mean_dice_cumulative": format_value(self.tracker.cumulative.mean_dice()),
                  "mean_iou_window": format_value(nanmean(window_iou))}
        for class_id, class_name in enumerate(self.classes.names):
            for row, row_name in enumerate(DICE_ROWS):
                values[f"dice_{row_name}/{class_name}"] = format_value(table[row, class_id])
            values[f"iou_window/{class_name}"] = format_value(window_iou[class_id])
        return StatusData(name=name, level=level, message=message,
                          hardware_id="dice_monitor", values=values)

    def write_report(self, out_dir: str | Path) -> dict[str, Path]:
        """Write report.json, per_frame.csv and plots, as ``dice-seg eval`` does.

        Raises:
            ValueError: if no pair has been scored yet (an empty report says nothing).

        """
        if self.scored == 0:
            raise ValueError(
                f"no mask/label pair scored yet ({self.received['mask']} masks, "
                f"{self.received['labels']} labels received); no report written to {out_dir}")
        # Imported here: report pulls in matplotlib, which the node needs only now.
        from dice_seg_ros.report import write_report
        latency = {"monitor": self._score_ms_total / self.scored}
        extra = {"source": "dice_monitor_node", "received": dict(self.received),
                 "errors": self.errors.as_dict()}
        return write_report(Path(out_dir), self.tracker, list(self.classes.names),
                            unpaired=self.unpaired, fps=self.pairs_per_second(),
                            latency_ms=latency, extra=extra, colors=self.classes.colors)
