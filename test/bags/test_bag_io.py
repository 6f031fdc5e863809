from __future__ import annotations

import numpy as np
import pytest
from conftest import image_msg

from dice_seg_ros.bags.bag_io import (IMAGE_TYPE, BadMessage, BagMessage, BagReader, BagWriter,
                                      StorageFault, make_header, msg_class, remove_old_bag)
from dice_seg_ros.errors import BagError
from dice_seg_ros.runtime.pairing import StampPairer, header_stamp_ns

MS = 1_000_000


def _write_small_bag(path, storage="mcap", frames=3):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(frames)]
    with BagWriter(path, storage=storage) as bag:
        for k, array in enumerate(images):
            stamp = 1_000 * MS + k * 100 * MS
            bag.write("/camera/image_raw", stamp, image_msg(array, stamp))
            bag.write("/camera/labels", stamp, image_msg(array[..., 0], stamp, "mono8"))
    return images


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_both_storages(tmp_path, storage):
    images = _write_small_bag(tmp_path / "bag", storage)
    with BagReader(tmp_path / "bag") as bag:
        assert bag.topics() == {"/camera/image_raw": IMAGE_TYPE, "/camera/labels": IMAGE_TYPE}
        assert bag.message_count("/camera/image_raw") == 3
        got = [m for m in bag.messages(["/camera/image_raw"])]
    assert [m.topic for m in got] == ["/camera/image_raw"] * 3
    for k, (message, array) in enumerate(zip(got, images)):
        stamp = header_stamp_ns(message.msg.header)
        assert stamp == message.log_time_ns == 1_000 * MS + k * 100 * MS
        assert message.msg.encoding == "rgb8"
        np.testing.assert_array_equal(message.msg.data.reshape(6, 8, 3), array)


def test_bare_mcap_file_reads(tmp_path):
    _write_small_bag(tmp_path / "bag")
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    with BagReader(mcap) as bag:
        assert len(list(bag.messages(["/camera/labels"]))) == 3


def test_missing_bag_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        BagReader(tmp_path / "nope")


def test_truncated_bag_is_salvaged_up_to_the_cut(tmp_path):
    _write_small_bag(tmp_path / "bag", frames=5)
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with BagReader(tmp_path / "bag") as bag:
        assert "File end magic" in bag.salvage
        got = []
        with pytest.raises(StorageFault, match="cut off.*last good log time"):
            for message in bag.messages(["/camera/image_raw"]):
                got.append(message.log_time_ns)
    assert 0 < len(got) < 5
    assert got == [1_000 * MS + k * 100 * MS for k in range(len(got))]


def test_garbage_file_is_bag_error(tmp_path):
    path = tmp_path / "junk.mcap"
    path.write_bytes(b"not a bag at all" * 10)
    with pytest.raises(BagError, match="junk.mcap"):
        with BagReader(path) as bag:
            list(bag.messages(["/x"]))


def test_undeserialisable_message_is_yielded_as_bad_and_reading_goes_on(tmp_path):
    with BagWriter(tmp_path / "bag") as bag:
        bag.write("/camera/image_raw", 5, image_msg(np.zeros((2, 2, 3), np.uint8), 5))
        bag.write_raw("/camera/image_raw", 6, b"\x00\x01\x00\x00garbage")
        bag.write("/camera/image_raw", 7, image_msg(np.zeros((2, 2, 3), np.uint8), 7))
    with BagReader(tmp_path / "bag") as bag:
        first, bad, last = bag.messages(["/camera/image_raw"])
    assert isinstance(first, BagMessage) and isinstance(last, BagMessage)
    assert isinstance(bad, BadMessage) and bad.log_time_ns == 6
    assert "/camera/image_raw at log time 6 ns does not deserialise" in bad.error


def test_check_topic_errors(tmp_path):
    _write_small_bag(tmp_path / "bag")
    with BagReader(tmp_path / "bag") as bag:
        assert bag.check_topic("/camera/labels", [IMAGE_TYPE]) == IMAGE_TYPE
        with pytest.raises(BagError, match=r"'/cam'.*/camera/image_raw.*/camera/labels"):
            bag.check_topic("/cam", [IMAGE_TYPE])
        with pytest.raises(BagError, match="CompressedImage"):
            bag.check_topic("/camera/labels", ["sensor_msgs/msg/CompressedImage"])


def test_writer_refuses_existing_path_and_unknown_storage(tmp_path):
    _write_small_bag(tmp_path / "bag")
    with pytest.raises(BagError, match="exists"):
        BagWriter(tmp_path / "bag")
    with pytest.raises(ValueError, match="rosbag1"):
        BagWriter(tmp_path / "other", storage="rosbag1")


def test_header_helpers():
    header = make_header(3_000_000_007, "cam")
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (3, 7, "cam")
    msg = msg_class("sensor_msgs/msg/CompressedImage")(header=header, format="jpeg",
                                                       data=np.zeros(1, np.uint8))
    assert header_stamp_ns(msg.header) == 3_000_000_007


# ---- stamp pairing -------------------------------------------------------------------------


def _run(pairer, events):
    out = []
    for kind, stamp in events:
        add = pairer.add_image if kind == "i" else pairer.add_label
        out += add(stamp * MS, f"{kind}{stamp}")
    out += pairer.flush()
    return [(p.image, p.label) for p in out]


def test_exact_stamps_pair_in_stream():
    pairer = StampPairer(max_offset_ms=20)
    emitted = []
    for k in range(10):
        emitted += pairer.add_image(k * 100 * MS, k)
        emitted += pairer.add_label(k * 100 * MS, k)
    # All but the newest pair are final before the end of the stream: bounded buffer.
    assert len(emitted) >= 9 and pairer.pending <= 2
    emitted += pairer.flush()
    assert [(p.image, p.label) for p in emitted] == [(k, k) for k in range(10)]
    assert (pairer.paired, pairer.unpaired_images, pairer.unpaired_labels) == (10, 0, 0)


def test_offset_just_inside_and_outside_limit():
    pairer = StampPairer(max_offset_ms=20)
    events = [("i", 0), ("l", 20), ("i", 100), ("l", 121)]
    assert _run(pairer, events) == [("i0", "l20")]
    assert (pairer.unpaired_images, pairer.unpaired_labels) == (1, 1)


def test_nearest_label_wins_and_each_label_used_once():
    pairer = StampPairer(max_offset_ms=20)
    # Image 110 is closer to label 112 than image 100 is, so 100 takes label 95.
    events = [("i", 100), ("l", 95), ("i", 110), ("l", 112), ("i", 300), ("l", 300)]
    assert _run(pairer, events) == [("i100", "l95"), ("i110", "l112"), ("i300", "l300")]
    assert (pairer.unpaired_images, pairer.unpaired_labels) == (0, 0)


def test_out_of_order_stamps_pair():
    pairer = StampPairer(max_offset_ms=5)
    events = [("i", 200), ("i", 100), ("l", 100), ("l", 200), ("i", 300), ("l", 300)]
    assert sorted(_run(pairer, events)) == [("i100", "l100"), ("i200", "l200"),
                                            ("i300", "l300")]


def test_duplicates_are_counted_not_reused():
    pairer = StampPairer(max_offset_ms=20)
    events = [("i", 100), ("i", 100), ("l", 100), ("l", 500), ("l", 500), ("i", 500)]
    pairs = _run(pairer, events)
    assert pairs == [("i100", "l100"), ("i500", "l500")]
    assert (pairer.paired, pairer.unpaired_images, pairer.unpaired_labels) == (2, 1, 1)


def test_silent_label_topic_keeps_buffer_bounded():
    pairer = StampPairer(max_offset_ms=20, max_pending=8)
    for k in range(50):
        pairer.add_image(k * 100 * MS, k)
        assert pairer.pending <= 9
    pairer.flush()
    assert (pairer.paired, pairer.unpaired_images) == (0, 50)


def test_negative_offset_rejected():
    with pytest.raises(ValueError, match="max_offset_ms"):
        StampPairer(max_offset_ms=-1)


def test_remove_old_bag_removes_a_bag_and_refuses_anything_else(tmp_path):
    bag_path = tmp_path / "bag"
    with BagWriter(bag_path) as bag:
        bag.add_topic("/x", IMAGE_TYPE)
    remove_old_bag(bag_path)
    assert not bag_path.exists()
    remove_old_bag(bag_path)  # absent: nothing to do
    other = tmp_path / "results"
    other.mkdir()
    (other / "keep.txt").write_text("data")
    with pytest.raises(BagError, match="results exists and is not a bag"):
        remove_old_bag(other)
    assert (other / "keep.txt").is_file()
