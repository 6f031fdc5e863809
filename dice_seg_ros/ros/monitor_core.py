"""ROS-free core of the Dice monitor node: (mask, label) pair in, metrics and messages out.

Scores come from ``metrics.DiceTracker``, the same object ``dice-seg eval``
uses, so the node and the offline evaluation agree on the same frames. Message
classes are passed in (rclpy's or a rosbags typestore's), never imported.

Masks and labels are paired by ``pairing.StampPairer`` (equal stamps by default,
as masks carry their camera frame's header). Memory stays flat over a long run:
per-frame rows are streamed to a CSV file as they are scored, only the last
``recent_frames`` rows are kept for the plots, and running counts live apart
from rows. Reports are written from a snapshot (``write_report``) taken under
the lock, so pairs keep being scored while the files are written.

With estimates enabled, each scored frame's true mean Dice is also joined by
stamp with the segmentation node's label-free estimate of it (``EstimateJoin``),
and the report holds both per frame, their MAE and Spearman correlation, and a
scatter plot (``report``, as ``dice-seg eval --estimated-dice`` writes).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np

from dice_seg_ros.classes import ClassSet
from dice_seg_ros.errors import ImageEncodingError
from dice_seg_ros.ros.diagnostics import (ESTIMATE_KEY, LEVEL_ERROR, LEVEL_OK, LEVEL_STALE,
                                          LEVEL_WARN, StatusData, format_value)
from dice_seg_ros.runtime.frame_errors import LABEL, MASK, SIZE, FrameErrors
from dice_seg_ros.runtime.image_conversion import check_label_format, image_to_numpy, labels_to_ids
from dice_seg_ros.runtime.metrics import DiceTracker, FrameScores, nanmean
from dice_seg_ros.runtime.pairing import Pair, StampPairer, header_stamp_ns
from dice_seg_ros.runtime.report import ESTIMATE_COLUMNS, write_quality_report
from dice_seg_ros.runtime.stage_latency import StageLatency

TOPICS = ("mask", "labels")
# Rows of the ~/dice Float32MultiArray; columns are the classes.
DICE_ROWS = ("frame", "window", "cumulative", "ema")
# Frames kept in memory for the Dice-over-time plot: 2 minutes at 30 Hz. Every
# frame still gets its row in the streamed per_frame.csv.
RECENT_FRAMES = 3600


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


def estimate_from_array(msg: Any) -> float:
    """Return the estimated mean Dice in a ``~/estimated_dice_stamped`` DiagnosticArray.

    Raises:
        ValueError: naming the topic and stamp if no status holds a numeric
            ``estimated_dice`` value.

    """
    for status in msg.status:
        for pair in status.values:
            if pair.key == ESTIMATE_KEY:
                try:
                    return float(pair.value)
                except ValueError:
                    break
    raise ValueError(f"estimated_dice_stamped topic: no numeric {ESTIMATE_KEY!r} value in the "
                     f"DiagnosticArray stamped {header_stamp_ns(msg.header)} ns (expected the "
                     "segmentation node's ~/estimated_dice_stamped)")


class RowStream:
    """CSV rows appended to a file as they come (per-frame scores, joined estimates).

    Args:
        columns: the header row.
        path: CSV file to write; None = a temporary file deleted by ``close``.

    """

    def __init__(self, columns: Sequence[str], path: str | Path | None = None) -> None:
        self._temporary = path is None
        if path is None:
            handle, name = tempfile.mkstemp(prefix="dice_monitor_", suffix=".csv")
            self._stream: IO[str] = open(handle, "w", newline="", encoding="utf-8")
            self.path = Path(name)
        else:
            self.path = Path(path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._stream)
        self._writer.writerow(columns)

    def append(self, row: Sequence[Any]) -> None:
        """Write one row."""
        self._writer.writerow(row)

    def flush(self) -> int:
        """Flush buffered rows to the file; return its size in bytes."""
        self._stream.flush()
        return self._stream.tell()

    def close(self) -> None:
        """Close the file (and delete it if it was temporary)."""
        if not self._stream.closed:
            self._stream.close()
        if self._temporary:
            self.path.unlink(missing_ok=True)


class EstimateJoin:
    """Scored frames' true mean Dice joined by stamp with the node's estimates, streamed.

    ``pairing.StampPairer`` pairs equal stamps (an estimate carries its camera
    frame's header, as the mask does); each joined frame becomes a row of a
    temporary CSV at once, so memory holds only the frames still waiting for
    their partner (at most ``max_pending`` per side) and running sums.

    Args:
        max_pending: scored frames, and estimates, kept while waiting for a partner.

    """

    def __init__(self, max_pending: int) -> None:
        self.pairer: StampPairer[float] = StampPairer(max_offset_ms=0.0, max_pending=max_pending,
                                                      equal_is_final=True)
        self.rows = RowStream(ESTIMATE_COLUMNS)
        self.received = 0
        self.joined = 0
        self._abs_error_sum = 0.0
        self._finite = 0

    def add_scored(self, stamp_ns: int, true_mean_dice: float) -> int:
        """Add a scored frame's true mean Dice; return the frames joined now."""
        return self._write(self.pairer.add_image(stamp_ns, true_mean_dice))

    def add_estimate(self, stamp_ns: int, estimate: float) -> int:
        """Add the node's estimate of the frame stamped ``stamp_ns``; return the frames joined."""
        self.received += 1
        return self._write(self.pairer.add_label(stamp_ns, estimate))

    def _write(self, pairs: list[Pair[float]]) -> int:
        """Stream the joined frames' rows and update the running error."""
        for pair in pairs:
            self.rows.append([self.joined, pair.image_stamp_ns, f"{pair.image:.6f}",
                              f"{pair.label:.6f}"])
            self.joined += 1
            if math.isfinite(pair.image) and math.isfinite(pair.label):
                self._abs_error_sum += abs(pair.label - pair.image)
                self._finite += 1
        return len(pairs)

    def mae(self) -> float:
        """Mean absolute error of the estimates over joined frames with a defined Dice (NaN)."""
        return self._abs_error_sum / self._finite if self._finite else math.nan

    def values(self) -> dict[str, str]:
        """Return the diagnostics key-values: estimates received, joined, unjoined, MAE."""
        return {"estimates_received": str(self.received),
                "estimates_joined": str(self.joined),
                "estimates_unjoined": str(self.pairer.unpaired_labels),
                "scored_frames_without_estimate": str(self.pairer.unpaired_images),
                "estimated_dice_mae": format_value(self.mae())}


def read_joined(path: Path, size: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Return stamps (ns), estimated and true mean Dice of the first ``size`` bytes of rows."""
    with open(path, "rb") as stream:
        text = stream.read(size).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    return ([int(row["stamp_ns"]) for row in rows],
            np.array([float(row["estimated_mean_dice"]) for row in rows]),
            np.array([float(row["true_mean_dice"]) for row in rows]))


@dataclass
class ReportSnapshot:
    """What a report needs, copied at one instant so scoring can go on meanwhile.

    Attributes:
        tracker: a DiceTracker holding the cumulative counts and the recent frames.
        scored: pairs scored in the whole run.
        extra: report.json keys beyond the tracker's (counts, rates, latency).
        unpaired: messages not (yet) part of a pair.
        fps: scored pairs per second.
        latency_ms: mean milliseconds per pair of each stage.
        rows_path: the streamed per_frame.csv.
        rows_bytes: its size when the snapshot was taken (rows of scored pairs only).
        estimates_path: the streamed estimated-vs-true rows, or None without estimates.
        estimates_bytes: their size when the snapshot was taken.

    """

    tracker: DiceTracker
    scored: int
    unpaired: int
    fps: float
    latency_ms: dict[str, float]
    rows_path: Path
    rows_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)
    estimates_path: Path | None = None
    estimates_bytes: int = 0


@dataclass
class Added:
    """Outcome of one message given to ``MonitorCore.add``.

    Attributes:
        scores: the scores of each pair the message completed (usually 0 or 1).
        errors: the errors of pairs that could not be scored.

    """

    scores: list[FrameScores] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)


class MonitorCore:
    """Pair-by-pair Dice/IoU with counters, thresholds and report writing.

    Args:
        classes: class names, colours and ignore index.
        label_format: "ids" or "color" (see ``image_conversion.labels_to_ids``).
        window_size: frames pooled by the sliding-window Dice.
        ema_alpha: EMA weight of the newest frame, in (0, 1].
        warn_below: window mean Dice under which the status is WARN.
        error_below: window mean Dice under which the status is ERROR.
        slop_s: largest stamp difference in seconds for a pair; 0 = equal stamps only.
        max_pending: messages per topic kept while waiting for a partner.
        rows_path: where per-frame rows are streamed; None = a temporary file.
        estimates: also join each scored frame with the segmentation node's
            estimated Dice (``add_estimate``) and report both.
        recent_frames: frames kept in memory for the Dice-over-time plot.
        clock: monotonic time source in seconds (injectable for tests).

    """

    def __init__(self, classes: ClassSet, label_format: str = "ids", window_size: int = 30,
                 ema_alpha: float = 0.1, warn_below: float = 0.6, error_below: float = 0.3,
                 slop_s: float = 0.0, max_pending: int = 30,
                 rows_path: str | Path | None = None, estimates: bool = False,
                 recent_frames: int = RECENT_FRAMES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.classes = classes
        self.label_format = check_label_format(label_format)
        self.tracker = DiceTracker(classes.num_classes, classes.ignore_index,
                                   window_size=window_size, ema_alpha=ema_alpha,
                                   max_frames=recent_frames)
        self.pairer: StampPairer[Any] = StampPairer(max_offset_ms=slop_s * 1000.0,
                                                    max_pending=max_pending,
                                                    equal_is_final=True)
        from dice_seg_ros.runtime.report import per_frame_header

        self.rows = RowStream(per_frame_header(classes.names), rows_path)
        self.estimates = EstimateJoin(max_pending) if estimates else None
        self.warn_below = warn_below
        self.error_below = error_below
        self.received = {topic: 0 for topic in TOPICS}
        self.paired = 0
        self.scored = 0
        self.errors = FrameErrors()
        self.last_error: str | None = None
        self._clock = clock
        self._first_pair_s: float | None = None
        self._last_pair_s: float | None = None
        self._latency = StageLatency(("monitor",))
        # Scoring (executor thread) and snapshots (report thread) take turns.
        self._lock = threading.RLock()
        self._report_thread: ThreadPoolExecutor | None = None

    def count(self, topic: str) -> None:
        """Count one message received on ``topic`` ("mask" or "labels")."""
        self.received[topic] += 1

    def add(self, topic: str, msg: Any) -> Added:
        """Count a mask or label message, pair it by stamp and score the pairs it completes."""
        with self._lock:
            self.count(topic)
            stamp = header_stamp_ns(msg.header)
            add = self.pairer.add_image if topic == "mask" else self.pairer.add_label
            outcome = Added()
            for pair in add(stamp, msg):
                try:
                    outcome.scores.append(self.score_pair(pair.image, pair.label))
                except ValueError as exc:
                    outcome.errors.append(exc)
            return outcome

    def add_estimate(self, msg: Any) -> int:
        """Join a ``~/estimated_dice_stamped`` message with its scored frame; return joins made.

        Raises:
            ValueError: if estimates are not enabled or the message holds no estimate.

        """
        if self.estimates is None:
            raise ValueError("estimated Dice given to a MonitorCore made without estimates=True")
        estimate = estimate_from_array(msg)
        with self._lock:
            return self.estimates.add_estimate(header_stamp_ns(msg.header), estimate)

    @property
    def unpaired(self) -> int:
        """Messages received on either topic that were not (yet) part of a pair."""
        return sum(self.received.values()) - len(TOPICS) * self.paired

    def unpaired_by_reason(self) -> dict[str, int]:
        """Why messages are unpaired: dropped per stream and reason, plus still ``pending``.

        The counts add up to :attr:`unpaired` for messages that went through :meth:`add`.
        """
        return {**self.pairer.unpaired_by_reason(), "pending": self.pairer.pending}

    def score_pair(self, mask_msg: Any, label_msg: Any) -> FrameScores:
        """Score one prediction/label pair, fold it into every running figure, stream its row.

        Raises:
            ImageEncodingError: if either image has an unusable encoding.
            ValueError: if the sizes differ or the labels hold unknown class ids.

        """
        from dice_seg_ros.runtime.report import per_frame_row

        with self._lock:
            start = time.perf_counter()
            self.paired += 1
            try:
                scores = self._score(mask_msg, label_msg)
            except ValueError as exc:
                self.last_error = str(exc)
                raise
            self.rows.append(per_frame_row(self.scored, scores))
            if self.estimates is not None:
                self.estimates.add_scored(header_stamp_ns(mask_msg.header), scores.mean_dice)
            self.scored += 1
            self.last_error = None
            self._latency.end_frame({"monitor": (time.perf_counter() - start) * 1000.0})
            now = self._clock()
            self._first_pair_s = now if self._first_pair_s is None else self._first_pair_s
            self._last_pair_s = now
            return scores

    def _score(self, mask_msg: Any, label_msg: Any) -> FrameScores:
        """Convert both messages and update the tracker."""
        stamp = header_stamp_ns(mask_msg.header)
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
        frame = self.tracker.frames[-1].dice if self.tracker.frames else np.full(num, np.nan)
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
                  **{f"unpaired_{reason}": str(count)
                     for reason, count in self.unpaired_by_reason().items()},
                  "mean_dice_window": format_value(mean_dice),
                  "mean_dice_cumulative": format_value(self.tracker.cumulative.mean_dice()),
                  "mean_iou_window": format_value(nanmean(window_iou))}
        for class_id, class_name in enumerate(self.classes.names):
            for row, row_name in enumerate(DICE_ROWS):
                values[f"dice_{row_name}/{class_name}"] = format_value(table[row, class_id])
            values[f"iou_window/{class_name}"] = format_value(window_iou[class_id])
        if self.estimates is not None:
            values.update(self.estimates.values())
        return StatusData(name=name, level=level, message=message,
                          hardware_id="dice_monitor", values=values)

    def snapshot(self) -> ReportSnapshot:
        """Copy what a report needs (cumulative counts, recent frames, counters) at once.

        Raises:
            ValueError: if no pair has been scored yet (an empty report says nothing).

        """
        with self._lock:
            if self.scored == 0:
                raise ValueError(
                    f"no mask/label pair scored yet ({self.received['mask']} masks, "
                    f"{self.received['labels']} labels received)")
            tracker = DiceTracker(self.classes.num_classes, self.classes.ignore_index)
            tracker.cumulative.matrix[...] = self.tracker.cumulative.matrix
            # FrameScores are frozen and their arrays never change: a shallow copy is enough.
            tracker.frames.extend(self.tracker.frames)
            extra = {"source": "dice_monitor_node", "frames": self.scored,
                     "received": dict(self.received),
                     "errors": self.errors.as_dict(),
                     "unpaired_by_reason": self.unpaired_by_reason(),
                     "plotted_frames": len(tracker.frames)}
            estimates = self.estimates
            return ReportSnapshot(tracker=tracker, scored=self.scored, unpaired=self.unpaired,
                                  fps=self.pairs_per_second(),
                                  latency_ms=self._latency.mean_ms(),
                                  rows_path=self.rows.path, rows_bytes=self.rows.flush(),
                                  extra=extra,
                                  estimates_path=estimates.rows.path if estimates else None,
                                  estimates_bytes=estimates.rows.flush() if estimates else 0)

    def write_report(self, out_dir: str | Path) -> dict[str, Path]:
        """Write report.json, per_frame.csv and plots now, as ``dice-seg eval`` does.

        Raises:
            ValueError: if no pair has been scored yet.
            OSError: if ``out_dir`` cannot be written.

        """
        return write_snapshot(self.snapshot(), out_dir, self.classes)

    def write_report_async(self, out_dir: str | Path) -> Future:
        """Take a snapshot now and write it on the report thread; return its Future.

        The Future's result is what ``write_report`` returns, or its exception.

        Raises:
            ValueError: if no pair has been scored yet (raised at once, not in the Future).

        """
        snapshot = self.snapshot()
        if self._report_thread is None:
            self._report_thread = ThreadPoolExecutor(max_workers=1,
                                                     thread_name_prefix="dice_report")
        return self._report_thread.submit(write_snapshot, snapshot, out_dir, self.classes)

    def close(self) -> None:
        """Finish a report in progress and close the row streams."""
        if self._report_thread is not None:
            self._report_thread.shutdown(wait=True)
            self._report_thread = None
        self.rows.close()
        if self.estimates is not None:
            self.estimates.rows.close()


def _copy_rows(snapshot: ReportSnapshot, target: Path) -> None:
    """Copy the streamed rows of the snapshot's pairs to ``target`` (unless it is the stream)."""
    if target.exists() and target.samefile(snapshot.rows_path):
        return
    with open(snapshot.rows_path, "rb") as source, open(target, "wb") as out:
        remaining = snapshot.rows_bytes
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)


def write_snapshot(snapshot: ReportSnapshot, out_dir: str | Path,
                   classes: ClassSet) -> dict[str, Path]:
    """Write report.json, per_frame.csv, then the plots (slowest last) of a snapshot.

    With estimates, also estimated_dice.csv and its scatter plot, and report.json
    ``estimated_dice`` (frames, MAE, Spearman) as ``dice-seg eval --estimated-dice``
    writes them; reading the joined rows back takes memory in proportion to the
    frames, only while the report is written.

    Returns:
        ``{"report", "per_frame", "dice_over_time", "confusion_matrix"}`` -> path,
        plus ``"estimated_dice"`` and ``"estimated_plot"`` with estimates.

    """
    # Imported here: report pulls in matplotlib, which the node needs only now.
    from dice_seg_ros.runtime import report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(snapshot.extra)
    estimate_paths = {}
    if snapshot.estimates_path is not None:
        extra["estimated_dice"], estimate_paths = write_quality_report(
            out, *read_joined(snapshot.estimates_path, snapshot.estimates_bytes))
    paths = report.write_report(out, snapshot.tracker, list(classes.names),
                                unpaired=snapshot.unpaired, fps=snapshot.fps,
                                latency_ms=snapshot.latency_ms, extra=extra,
                                colors=classes.colors,
                                per_frame=lambda path: _copy_rows(snapshot, path))
    return dict(paths, **estimate_paths)
