"""Stamp pairing as the Dice monitor uses it: exact by default, bounded, every loss counted."""

import pytest

from dice_seg_ros.runtime.pairing import StampPairer

MS = 1_000_000
FRAME = 33 * MS  # 30 Hz


def test_exact_pairing_never_scores_a_label_against_the_neighbouring_mask():
    """The mask of frame 1 was dropped: its label must stay unpaired, not meet mask 2."""
    pairer = StampPairer(max_offset_ms=0, equal_is_final=True)
    out = []
    out += pairer.add_label(0, "l0")
    out += pairer.add_image(0, "m0")
    out += pairer.add_label(FRAME, "l1")
    out += pairer.add_label(2 * FRAME, "l2")
    out += pairer.add_image(2 * FRAME, "m2")
    out += pairer.flush()
    assert [(p.image, p.label) for p in out] == [("m0", "l0"), ("m2", "l2")]
    assert pairer.unpaired_by_reason()["label_no_partner"] == 1
    assert pairer.unpaired_labels == 1 and pairer.unpaired_images == 0


def test_a_50ms_slop_would_pair_the_neighbouring_frame():
    """Why slop is opt-in: at 30 Hz a 50 ms slop pairs label 1 with mask 2."""
    pairer = StampPairer(max_offset_ms=50)
    events = [("l", 0, "l0"), ("i", 0, "m0"), ("l", FRAME, "l1"), ("i", 2 * FRAME, "m2")]
    out = []
    for kind, stamp, item in events:
        out += (pairer.add_image if kind == "i" else pairer.add_label)(stamp, item)
    out += pairer.flush()
    assert ("m2", "l1") in [(p.image, p.label) for p in out]


def test_equal_stamps_pair_at_once_without_waiting_for_the_next_message():
    pairer = StampPairer(max_offset_ms=0, equal_is_final=True)
    assert pairer.add_label(5 * FRAME, "l") == []
    pairs = pairer.add_image(5 * FRAME, "m")
    assert [(p.image, p.label) for p in pairs] == [("m", "l")] and pairer.pending == 0
    waiting = StampPairer(max_offset_ms=0)
    waiting.add_label(5 * FRAME, "l")
    assert waiting.add_image(5 * FRAME, "m") == [] and waiting.pending == 2


def test_silent_stream_evicts_oldest_and_counts_buffer_full():
    pairer = StampPairer(max_offset_ms=0, max_pending=4, equal_is_final=True)
    for k in range(10):
        pairer.add_image(k * FRAME, k)
        assert pairer.pending <= 4
    # The newest items are kept: a late label still finds its mask.
    pairs = pairer.add_label(9 * FRAME, "l9")
    assert [(p.image, p.label) for p in pairs] == [(9, "l9")]
    pairer.flush()
    reasons = pairer.unpaired_by_reason()
    assert reasons["image_buffer_full"] == 6
    assert reasons["image_end"] + reasons["image_no_partner"] == 3
    assert pairer.unpaired_images == 9


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_pending"):
        StampPairer(max_offset_ms=0, max_pending=0)
    with pytest.raises(ValueError, match="max_offset_ms"):
        StampPairer(max_offset_ms=-1)
