import warnings

import numpy as np
import pytest

from dice_seg_ros.runtime import metrics
from dice_seg_ros.runtime.metrics import (ConfusionMatrix, DiceTracker, FrameScores,
                                          confusion_matrix, dice_per_class, iou_per_class)

DTYPES = [np.uint8, np.int64, np.int32, np.uint16]


def brute_force(pred, target, num_classes, ignore_index=None):
    """Per-class Dice and IoU by explicit set counting, one class at a time."""
    keep = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    dice, iou = [], []
    for c in range(num_classes):
        p = (pred == c) & keep
        t = (target == c) & keep
        inter = np.sum(p & t)
        total = p.sum() + t.sum()
        dice.append(np.nan if total == 0 else 2 * inter / total)
        iou.append(np.nan if total == 0 else inter / (total - inter))
    return np.array(dice), np.array(iou)


def random_pair(rng, shape, num_classes, dtype=np.uint8, ignore_index=None, ignore_frac=0.1):
    pred = rng.integers(0, num_classes, shape).astype(dtype)
    target = rng.integers(0, num_classes, shape).astype(dtype)
    if ignore_index is not None:
        target[rng.random(shape) < ignore_frac] = ignore_index
    return pred, target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_matches_brute_force(dtype, ignore_index):
    rng = np.random.default_rng(1)
    pred, target = random_pair(rng, (37, 53), 6, dtype, ignore_index)
    pred[pred == 3] = 0  # class 3 absent from prediction only
    pred[pred == 4] = 0  # class 4 absent from both -> NaN
    target[target == 4] = 0
    want_dice, want_iou = brute_force(pred, target, 6, ignore_index)
    np.testing.assert_allclose(dice_per_class(pred, target, 6, ignore_index), want_dice)
    np.testing.assert_allclose(iou_per_class(pred, target, 6, ignore_index), want_iou)
    assert np.isnan(want_dice[4]) and want_dice[3] == 0.0


def test_matrix_layout_rows_target_cols_pred():
    pred = np.array([[0, 1, 1]], np.uint8)
    target = np.array([[0, 0, 2]], np.uint8)
    m = confusion_matrix(pred, target, 3)
    assert m.dtype == np.int64 and m.shape == (3, 3)
    assert m[0, 0] == 1 and m[0, 1] == 1 and m[2, 1] == 1 and m.sum() == 3


def test_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    pred, target = random_pair(rng, (64, 48), 5, np.uint8, 255, 0.2)
    pred[pred == 4] = 0  # class 4 absent from both: sklearn says 0, we say NaN
    target[target == 4] = 1
    keep = target != 255
    labels = list(range(5))
    f1 = metrics.f1_score(target[keep], pred[keep], labels=labels, average=None,
                          zero_division=0)
    jac = metrics.jaccard_score(target[keep], pred[keep], labels=labels, average=None,
                                zero_division=0)
    dice = dice_per_class(pred, target, 5, 255)
    iou = iou_per_class(pred, target, 5, 255)
    np.testing.assert_allclose(dice[:4], f1[:4])
    np.testing.assert_allclose(iou[:4], jac[:4])
    assert np.isnan(dice[4]) and np.isnan(iou[4]) and f1[4] == 0


def test_uint8_chunked_path_matches_generic(monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK", 1000)  # several histogram calls per frame
    rng = np.random.default_rng(3)
    pred, target = random_pair(rng, (70, 90), 20, np.uint8, 255)
    fast = confusion_matrix(pred, target, 20, 255)
    generic = confusion_matrix(pred.astype(np.int64), target.astype(np.int64), 20, 255)
    np.testing.assert_array_equal(fast, generic)
    assert fast.sum() == np.count_nonzero(target != 255)


def test_counts_exact_beyond_float32_precision():
    n = (1 << 24) + 3  # float32 cannot hold 2**24 + 1 exactly
    zeros = np.zeros(n, np.uint8)
    assert confusion_matrix(zeros, zeros, 2)[0, 0] == n


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_empty_frame_counts_nothing(dtype):
    empty = np.zeros((0, 4), dtype)
    assert confusion_matrix(empty, empty, 3).sum() == 0
    assert np.isnan(dice_per_class(empty, empty, 3)).all()


def test_all_absent_gives_nan_without_warnings():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(cm.dice()).all() and np.isnan(cm.iou()).all()
        assert np.isnan(cm.mean_dice()) and np.isnan(cm.mean_iou())


def test_mean_skips_absent_classes():
    pred = np.array([0, 0, 1, 1], np.uint8)
    target = np.array([0, 0, 1, 0], np.uint8)
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    dice = cm.dice()
    assert np.isnan(dice[2:]).all()
    assert cm.mean_dice() == pytest.approx((dice[0] + dice[1]) / 2)


def test_merge_equals_update_on_concatenation():
    rng = np.random.default_rng(4)
    p1, t1 = random_pair(rng, (20, 30), 4, np.uint8, 255)
    p2, t2 = random_pair(rng, (11, 30), 4, np.uint8, 255)
    a, b, whole = ConfusionMatrix(4, 255), ConfusionMatrix(4, 255), ConfusionMatrix(4, 255)
    a.update(p1, t1)
    b.update(p2, t2)
    a.merge(b)
    whole.update(np.concatenate([p1, p2]), np.concatenate([t1, t2]))
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    np.testing.assert_allclose(a.dice(), whole.dice())


def test_merge_rejects_incompatible():
    with pytest.raises(ValueError, match="num_classes=5"):
        ConfusionMatrix(4).merge(ConfusionMatrix(5))
    with pytest.raises(ValueError, match="ignore_index=255"):
        ConfusionMatrix(4).merge(ConfusionMatrix(4, 255))


def test_reset_zeroes():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1]), np.array([1, 1]))
    cm.reset()
    assert cm.matrix.sum() == 0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_out_of_range_prediction(dtype):
    pred = np.array([0, 7, 1, 9], dtype)
    target = np.array([0, 1, 1, 1], dtype)
    with pytest.raises(ValueError, match=r"prediction.*7, 9"):
        confusion_matrix(pred, target, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_prediction_equal_to_ignore_index_is_invalid(dtype):
    pred = np.array([0, 255], dtype)
    target = np.array([0, 255], dtype)
    with pytest.raises(ValueError, match=r"prediction.*255"):
        confusion_matrix(pred, target, 3, ignore_index=255)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_out_of_range_target(dtype):
    pred = np.array([0, 1, 1], dtype)
    target = np.array([0, 200, 255], dtype)
    with pytest.raises(ValueError, match=r"target.*200") as info:
        confusion_matrix(pred, target, 3, ignore_index=255)
    assert "255" not in str(info.value).split(":")[-1]


def test_negative_ids_rejected():
    with pytest.raises(ValueError, match=r"target.*-1"):
        confusion_matrix(np.array([0, 1]), np.array([0, -1]), 2)


def test_negative_ignore_index_generic_path():
    pred = np.array([0, 1, 1])
    target = np.array([0, -100, 1])
    np.testing.assert_allclose(dice_per_class(pred, target, 2, ignore_index=-100), [1.0, 1.0])


def test_float_input_rejected():
    with pytest.raises(ValueError, match="float"):
        confusion_matrix(np.zeros(3), np.zeros(3, np.uint8), 2)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="ignore_index 1"):
        ConfusionMatrix(3, ignore_index=1)
    with pytest.raises(ValueError, match="window_size"):
        DiceTracker(3, window_size=0)
    with pytest.raises(ValueError, match="ema_alpha"):
        DiceTracker(3, ema_alpha=0.0)
    with pytest.raises(ValueError, match="ema_alpha"):
        DiceTracker(3, ema_alpha=1.5)
    with pytest.raises(ValueError, match="max_frames"):
        DiceTracker(3, max_frames=0)


def test_tracker_per_frame_cumulative_and_rows():
    rng = np.random.default_rng(5)
    tracker = DiceTracker(4, ignore_index=255, window_size=3)
    pairs = [random_pair(rng, (16, 16), 4, np.uint8, 255) for _ in range(5)]
    for i, (p, t) in enumerate(pairs):
        scores = tracker.update(p, t, stamp_ns=1000 * i)
        assert isinstance(scores, FrameScores) and scores.stamp_ns == 1000 * i
        want_dice, want_iou = brute_force(p, t, 4, 255)
        np.testing.assert_allclose(scores.dice, want_dice)
        np.testing.assert_allclose(scores.iou, want_iou)
        assert scores.mean_dice == pytest.approx(np.nanmean(want_dice))
    assert [f.stamp_ns for f in tracker.frames] == [0, 1000, 2000, 3000, 4000]
    all_p = np.concatenate([p for p, _ in pairs])
    all_t = np.concatenate([t for _, t in pairs])
    np.testing.assert_allclose(tracker.cumulative.dice(), brute_force(all_p, all_t, 4, 255)[0])


def test_tracker_window_pools_last_frames():
    rng = np.random.default_rng(6)
    tracker = DiceTracker(3, window_size=2)
    pairs = [random_pair(rng, (8, 8), 3) for _ in range(4)]
    for p, t in pairs:
        tracker.update(p, t)
    last_p = np.concatenate([pairs[2][0], pairs[3][0]])
    last_t = np.concatenate([pairs[2][1], pairs[3][1]])
    want_dice, want_iou = brute_force(last_p, last_t, 3)
    np.testing.assert_allclose(tracker.window_dice(), want_dice)
    np.testing.assert_allclose(tracker.window_iou(), want_iou)


def test_tracker_ema_skips_absent_frames():
    tracker = DiceTracker(2, ema_alpha=0.5)
    perfect = np.zeros((2, 2), np.uint8)
    assert np.isnan(tracker.ema_dice()).all()
    tracker.update(perfect, perfect)  # class 0 Dice 1, class 1 absent
    np.testing.assert_array_equal(np.isnan(tracker.ema_dice()), [False, True])
    pred = np.array([[0, 0], [1, 1]], np.uint8)
    target = np.array([[0, 1], [1, 1]], np.uint8)
    d = tracker.update(pred, target).dice  # class 0: 2/3, class 1: 4/5
    ema = tracker.ema_dice()
    assert ema[0] == pytest.approx(0.5 * 1.0 + 0.5 * d[0])
    assert ema[1] == pytest.approx(d[1])  # first present frame starts the EMA
    tracker.update(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))  # class 0 absent
    assert tracker.ema_dice()[0] == pytest.approx(ema[0])
    assert tracker.ema_dice()[1] == pytest.approx(0.5 * d[1] + 0.5)


def test_tracker_max_frames_bounds_rows_only():
    tracker = DiceTracker(2, max_frames=2)
    for i in range(5):
        tracker.update(np.zeros(4, np.uint8), np.zeros(4, np.uint8), stamp_ns=i)
    assert [f.stamp_ns for f in tracker.frames] == [3, 4]
    assert tracker.cumulative.matrix.sum() == 20


def test_tracker_reset():
    tracker = DiceTracker(2)
    tracker.update(np.zeros(4, np.uint8), np.zeros(4, np.uint8))
    tracker.reset()
    assert not tracker.frames and tracker.cumulative.matrix.sum() == 0
    assert np.isnan(tracker.window_dice()).all() and np.isnan(tracker.ema_dice()).all()


def test_tracker_bad_frame_leaves_state_unchanged():
    tracker = DiceTracker(2)
    with pytest.raises(ValueError):
        tracker.update(np.array([0, 5], np.uint8), np.array([0, 1], np.uint8))
    assert not tracker.frames and tracker.cumulative.matrix.sum() == 0


def test_mean_dice_present_ignores_classes_absent_from_the_labels():
    target = np.array([[0, 0, 1, 1]], np.uint8)
    clean = ConfusionMatrix(3)
    clean.update(np.array([[0, 0, 1, 1]], np.uint8), target)
    stray = ConfusionMatrix(3)
    stray.update(np.array([[0, 2, 1, 1]], np.uint8), target)   # one stray pixel of class 2
    assert list(clean.labelled()) == [True, True, False]
    assert clean.mean_dice() == pytest.approx(1.0) and clean.mean_dice_present() == 1.0
    # mean_dice counts the absent class as 0 once it is predicted; the present mean does not.
    assert stray.mean_dice() == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert stray.mean_dice_present() == pytest.approx((2 / 3 + 1.0) / 2)
