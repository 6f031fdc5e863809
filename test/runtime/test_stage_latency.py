import pytest

from dice_seg_ros.runtime.stage_latency import StageLatency


def test_mean_over_all_frames_counts_time_of_frames_that_never_end():
    latency = StageLatency(("read", "infer"))
    assert latency.mean_ms() == {}
    latency.add("read", 3.0)  # a frame skipped after reading: its time goes to the next one
    latency.add("read", 1.0)
    latency.end_frame({"infer": 10.0})
    latency.end_frame({"read": 2.0, "infer": 20.0})
    assert latency.frames == 2
    assert latency.mean_ms() == {"read": 3.0, "infer": 15.0, "total": 18.0}


def test_window_keeps_only_the_last_frames():
    latency = StageLatency(("infer",), window=2)
    for ms in (100.0, 2.0, 4.0):
        latency.end_frame({"infer": ms})
    assert latency.frames == 3
    assert latency.mean_ms() == {"infer": 3.0, "total": 3.0}


def test_unknown_stage_and_bad_window_are_named():
    with pytest.raises(ValueError, match="'publish'"):
        StageLatency(("infer",)).add("publish", 1.0)
    with pytest.raises(ValueError, match="window"):
        StageLatency(("infer",), window=0)
