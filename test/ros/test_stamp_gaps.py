"""Frames lost before the node, counted from gaps in the camera's stamps."""

import numpy as np

from dice_seg_ros.ros.stamp_gaps import MIN_DELTAS, StampGaps

PERIOD_NS = 33_333_333  # 30 Hz


def feed(gaps, stamps):
    return [gaps.add(int(stamp)) for stamp in stamps]


def test_steady_stream_has_no_gaps_and_its_period_is_found():
    gaps = StampGaps()
    rng = np.random.default_rng(1)
    jitter = rng.integers(-500_000, 500_000, 100)  # +-0.5 ms, as a camera driver stamps
    assert sum(feed(gaps, np.arange(100) * PERIOD_NS + jitter)) == 0
    assert abs(gaps.period_ns - PERIOD_NS) < 1_000_000
    assert gaps.values()["frames_missing_in_stamps"] == "0"
    assert gaps.values()["camera_period_ms"].startswith("33.")


def test_missing_frames_are_counted_once_the_period_is_known():
    gaps = StampGaps()
    kept = [i for i in range(200) if i < 10 or i % 3 != 0]  # a third lost after warm-up
    feed(gaps, np.asarray(kept) * PERIOD_NS)
    assert gaps.missing == 200 - len(kept) - (199 - kept[-1])
    assert gaps.received == len(kept) and gaps.period_ns == PERIOD_NS


def test_heavy_loss_keeps_the_period_and_counts_every_lost_frame():
    rng = np.random.default_rng(2)
    kept = np.flatnonzero(rng.random(3000) < 0.5)  # half lost, as 1280x720 best effort
    gaps = StampGaps()
    feed(gaps, kept * PERIOD_NS)
    assert gaps.period_ns == PERIOD_NS
    # Gaps before the period is known (the first MIN_DELTAS deltas) are not counted.
    uncounted = int(kept[MIN_DELTAS] - kept[0] - MIN_DELTAS)
    assert gaps.missing == kept[-1] - kept[0] + 1 - len(kept) - uncounted


def test_stamps_going_back_restart_the_estimate_and_repeats_are_no_gap():
    gaps = StampGaps()
    feed(gaps, np.arange(20) * PERIOD_NS)
    assert gaps.add(5 * PERIOD_NS) == 0 and gaps.restarts == 1  # a bag looped
    assert gaps.period_ns is None and gaps.values()["camera_period_ms"] == "nan"
    assert gaps.add(5 * PERIOD_NS) == 0  # the same stamp twice
    feed(gaps, (np.arange(6, 30)) * PERIOD_NS)
    assert gaps.add(32 * PERIOD_NS) == 2 and gaps.missing == 2
