"""Confusion-matrix Dice and IoU for semantic segmentation, per frame and streaming.

All scores come from one ``(C, C)`` confusion matrix (rows = target class id,
columns = predicted class id), so per-frame, cumulative, sliding-window and
EMA figures agree with each other by construction.  Dice of class ``c`` is
``2 TP / (|pred == c| + |target == c|)`` and IoU is ``TP / (|pred| + |target| - TP)``;
a class absent from both prediction and target scores NaN (not 0 or 1), and
means skip NaN classes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

# Pixels per cv2.calcHist call: its float32 bins count exactly up to 2**24.
_CHUNK = 1 << 24
# Bad values listed in an error message, at most.
_MAX_LISTED = 10


def _check_num_classes(num_classes: int, ignore_index: int | None) -> None:
    """Raise ValueError unless ``num_classes >= 1`` and ``ignore_index`` is not a class id."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} collides with a class id (0..{num_classes - 1})")


def _bad_values_error(values: np.ndarray, which: str, num_classes: int,
                      ignore_index: int | None) -> ValueError:
    """Build the ValueError for out-of-range class ids found in ``which`` (prediction/target)."""
    listed = ", ".join(str(int(v)) for v in values[:_MAX_LISTED])
    more = f" (+{len(values) - _MAX_LISTED} more)" if len(values) > _MAX_LISTED else ""
    allowed = f"0..{num_classes - 1}"
    if which == "target" and ignore_index is not None:
        allowed += f" or ignore_index {ignore_index}"
    return ValueError(f"{which} has class ids outside {allowed}: {listed}{more}")


def _histogram_uint8(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the (256, 256) int64 joint histogram of uint8 ``target`` (rows) and ``pred``.

    Why OpenCV and not numpy: ``np.bincount(target.astype(int64) * C + pred)``
    builds full-size int64 temporaries, and even a cache-chunked uint16 index fed
    to bincount measured ~2x slower than ``cv2.calcHist`` on 1920x1080 masks
    (bincount casts to intp, scans min/max, then counts; see
    benchmarks/bench_metrics.py).  calcHist reads both uint8 masks once.
    Covering all 256 values lets range validation read this histogram instead of
    making extra passes over the pixels.
    """
    flat_pred = pred.reshape(1, -1)
    flat_target = target.reshape(1, -1)
    hist = np.zeros((256, 256), dtype=np.int64)
    for start in range(0, flat_pred.shape[1], _CHUNK):
        part = [np.ascontiguousarray(flat_target[:, start:start + _CHUNK]),
                np.ascontiguousarray(flat_pred[:, start:start + _CHUNK])]
        hist += cv2.calcHist(part, [0, 1], None, [256, 256], [0, 256, 0, 256]).astype(np.int64)
    return hist


def _confusion_uint8(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int | None) -> np.ndarray:
    """Confusion matrix for uint8 inputs, validated from the joint histogram."""
    hist = _histogram_uint8(pred, target)
    bad_pred = np.flatnonzero(hist[:, num_classes:].any(axis=0)) + num_classes
    if bad_pred.size:
        raise _bad_values_error(bad_pred, "prediction", num_classes, ignore_index)
    target_rows = np.flatnonzero(hist[num_classes:].any(axis=1)) + num_classes
    bad_target = target_rows[target_rows != ignore_index]
    if bad_target.size:
        raise _bad_values_error(bad_target, "target", num_classes, ignore_index)
    return np.ascontiguousarray(hist[:num_classes, :num_classes])


def _out_of_range(values: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the sorted distinct entries of ``values`` outside ``0..num_classes-1``."""
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if low >= 0 and high < num_classes:
        return values[:0]
    return np.unique(values[(values < 0) | (values >= num_classes)])


def _confusion_generic(pred: np.ndarray, target: np.ndarray, num_classes: int,
                       ignore_index: int | None) -> np.ndarray:
    """Confusion matrix for any integer dtypes (int64 argmax output, uint16, ...)."""
    bad_pred = _out_of_range(pred, num_classes)
    if bad_pred.size:
        raise _bad_values_error(bad_pred, "prediction", num_classes, ignore_index)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    bad_target = _out_of_range(target, num_classes)
    if bad_target.size:
        raise _bad_values_error(bad_target, "target", num_classes, ignore_index)
    index = target.astype(np.intp).reshape(-1) * num_classes + pred.reshape(-1)
    counts = np.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """Return the ``(C, C)`` int64 pixel-count confusion matrix (rows target, columns pred).

    Args:
        pred: predicted class ids, integer array of any shape.
        target: ground-truth class ids, same shape as ``pred``.
        num_classes: C; valid ids are ``0..C-1``.
        ignore_index: target value whose pixels are not counted (e.g. 255), or None.

    Raises:
        ValueError: shapes differ, an array is not integer, or an id is out of range
            (a prediction equal to ``ignore_index`` is out of range too).

    """
    _check_num_classes(num_classes, ignore_index)
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from target shape {target.shape}")
    for name, array in (("prediction", pred), ("target", target)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    if pred.dtype == np.uint8 and target.dtype == np.uint8 and num_classes <= 256:
        return _confusion_uint8(pred, target, num_classes, ignore_index)
    return _confusion_generic(pred, target, num_classes, ignore_index)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator`` as float64, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def dice_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """Per-class Dice ``(C,)`` float64 from a confusion matrix; NaN for absent classes."""
    tp = np.diag(matrix)
    return _ratio(2 * tp, matrix.sum(axis=0) + matrix.sum(axis=1))


def iou_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU (Jaccard) ``(C,)`` float64 from a confusion matrix; NaN for absent classes."""
    tp = np.diag(matrix)
    return _ratio(tp, matrix.sum(axis=0) + matrix.sum(axis=1) - tp)


def nanmean(values: np.ndarray) -> float:
    """Mean over the non-NaN entries; NaN (without a RuntimeWarning) if all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")


def dice_per_class(pred: np.ndarray, target: np.ndarray, num_classes: int,
                   ignore_index: int | None = None) -> np.ndarray:
    """Per-class Dice ``(C,)`` of one frame; NaN where a class is in neither array."""
    return dice_from_matrix(confusion_matrix(pred, target, num_classes, ignore_index))


def iou_per_class(pred: np.ndarray, target: np.ndarray, num_classes: int,
                  ignore_index: int | None = None) -> np.ndarray:
    """Per-class IoU ``(C,)`` of one frame; NaN where a class is in neither array."""
    return iou_from_matrix(confusion_matrix(pred, target, num_classes, ignore_index))


class ConfusionMatrix:
    """Accumulates pixel counts over frames; Dice/IoU computed from the totals (pooled).

    Attributes:
        num_classes: C.
        ignore_index: target value not counted, or None.
        matrix: ``(C, C)`` int64 pixel counts, rows = target id, columns = predicted id.

    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        _check_num_classes(num_classes, ignore_index)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Add one frame (or batch) of class ids; return that frame's own matrix."""
        frame = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.matrix += frame
        return frame

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of ``other`` (e.g. from another worker) into this matrix."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge a ConfusionMatrix with num_classes={other.num_classes}, "
                f"ignore_index={other.ignore_index} into one with "
                f"num_classes={self.num_classes}, ignore_index={self.ignore_index}")
        self.matrix += other.matrix

    def reset(self) -> None:
        """Zero all counts."""
        self.matrix[...] = 0

    def dice(self) -> np.ndarray:
        """Per-class Dice ``(C,)`` of the accumulated counts; NaN for absent classes."""
        return dice_from_matrix(self.matrix)

    def iou(self) -> np.ndarray:
        """Per-class IoU ``(C,)`` of the accumulated counts; NaN for absent classes."""
        return iou_from_matrix(self.matrix)

    def mean_dice(self) -> float:
        """Mean Dice over classes present in prediction or target; NaN if none."""
        return nanmean(self.dice())

    def mean_iou(self) -> float:
        """Mean IoU over classes present in prediction or target; NaN if none."""
        return nanmean(self.iou())

    def labelled(self) -> np.ndarray:
        """Boolean ``(C,)``: which classes occur in the labels (target) at all."""
        return self.matrix.sum(axis=1) > 0

    def mean_dice_present(self) -> float:
        """Mean Dice over the classes that occur in the labels; NaN if none.

        Unlike :meth:`mean_dice`, a class absent from the labels never counts,
        whether or not it is predicted: a validation set without water then
        scores the same whether the network predicts a few water pixels or none.
        """
        return nanmean(self.dice()[self.labelled()])


@dataclass(frozen=True)
class FrameScores:
    """Scores of one frame.

    Attributes:
        stamp_ns: the frame's stamp in nanoseconds, or None if the caller gave none.
        dice: ``(C,)`` float64 per-class Dice, NaN where the class is absent.
        iou: ``(C,)`` float64 per-class IoU, NaN where the class is absent.
        mean_dice: NaN-skipping mean of ``dice`` (NaN if every class is absent).
        mean_iou: NaN-skipping mean of ``iou``.

    """

    stamp_ns: int | None
    dice: np.ndarray
    iou: np.ndarray
    mean_dice: float
    mean_iou: float


class DiceTracker:
    """Streaming Dice/IoU: per frame, cumulative, sliding window and EMA.

    Attributes:
        cumulative: :class:`ConfusionMatrix` over every frame so far.
        frames: the :class:`FrameScores` of each frame, oldest first (only the last
            ``max_frames`` if that is set, so a long-running node stays bounded).
        window_size: number of most recent frames pooled by :meth:`window_dice`.
        ema_alpha: EMA weight of the newest frame, in (0, 1].

    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 window_size: int = 30, ema_alpha: float = 0.1,
                 max_frames: int | None = None) -> None:
        _check_num_classes(num_classes, ignore_index)
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(f"window_size must be a positive integer, got {window_size!r}")
        if not 0.0 < ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {ema_alpha!r}")
        if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
            raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.window_size = int(window_size)
        self.ema_alpha = float(ema_alpha)
        self.cumulative = ConfusionMatrix(num_classes, ignore_index)
        self.frames: list[FrameScores] | deque[FrameScores] = (
            [] if max_frames is None else deque(maxlen=int(max_frames)))
        self._window: deque[np.ndarray] = deque()
        self._window_sum = np.zeros_like(self.cumulative.matrix)
        self._ema = np.full(self.num_classes, np.nan)

    def update(self, pred: np.ndarray, target: np.ndarray,
               stamp_ns: int | None = None) -> FrameScores:
        """Score one frame of class ids, fold it into every running figure, and return it."""
        frame = self.cumulative.update(pred, target)
        self._window.append(frame)
        self._window_sum += frame
        if len(self._window) > self.window_size:
            self._window_sum -= self._window.popleft()
        dice = dice_from_matrix(frame)
        present = ~np.isnan(dice)
        first = present & np.isnan(self._ema)
        self._ema[first] = dice[first]
        later = present & ~first
        self._ema[later] += self.ema_alpha * (dice[later] - self._ema[later])
        iou = iou_from_matrix(frame)
        scores = FrameScores(stamp_ns, dice, iou, nanmean(dice), nanmean(iou))
        self.frames.append(scores)
        return scores

    def window_dice(self) -> np.ndarray:
        """Per-class Dice of the pooled counts of the last ``window_size`` frames."""
        return dice_from_matrix(self._window_sum)

    def window_iou(self) -> np.ndarray:
        """Per-class IoU of the pooled counts of the last ``window_size`` frames."""
        return iou_from_matrix(self._window_sum)

    def ema_dice(self) -> np.ndarray:
        """Per-class EMA of per-frame Dice; frames where a class is absent are skipped.

        A class's EMA starts at its first present frame's Dice and is NaN until then.
        """
        return self._ema.copy()

    def reset(self) -> None:
        """Forget every frame and running figure."""
        self.cumulative.reset()
        self.frames.clear()
        self._window.clear()
        self._window_sum[...] = 0
        self._ema[...] = np.nan
