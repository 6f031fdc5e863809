"""Damaged and unfinished bags: salvage up to the damage, clean stops, quick fault injection."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import image_msg

from dice_seg_ros.bags.bag_io import BadMessage, BagReader, BagWriter, StorageFault
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.cli import main
from dice_seg_ros.errors import BagError
from dice_seg_ros.runtime.pairing import header_stamp_ns

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_faults  # noqa: E402

MS = 1_000_000
FRAMES = 12


def _random_bag(path: Path, storage: str, frames: int = FRAMES) -> list[tuple[int, bytes]]:
    """Write random image/label pairs; return (stamp, serialised image bytes) per frame."""
    rng = np.random.default_rng(5)
    written = []
    with BagWriter(path, storage=storage) as bag:
        for k in range(frames):
            stamp = (1000 + 100 * k) * MS
            image = image_msg(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), stamp)
            labels = image_msg(rng.integers(0, 6, (24, 32), dtype=np.uint8), stamp, "mono8")
            bag.write(IMAGE_TOPIC, stamp, image)
            bag.write(LABEL_TOPIC, stamp, labels)
            written.append((stamp, bytes(labels.data)))
    return written


def _storage_file(bag: Path) -> Path:
    return bench_faults.storage_file(bag)


def _read_stamps(bag: Path, topic: str) -> tuple[list[int], StorageFault | None]:
    stamps, fault = [], None
    with BagReader(bag) as reader:
        try:
            for message in reader.messages([topic]):
                assert not isinstance(message, BadMessage)
                stamps.append(header_stamp_ns(message.msg.header))
        except StorageFault as exc:
            fault = exc
    return stamps, fault


def test_mcap_cut_at_many_points_keeps_every_message_before_the_cut(tmp_path):
    written = _random_bag(tmp_path / "clean", "mcap")
    data = _storage_file(tmp_path / "clean").read_bytes()
    # Independent oracle: a label message is complete iff its pixel bytes end before the cut.
    ends = [data.index(pixels) + len(pixels) for _, pixels in written]
    for cut in range(200, len(data), len(data) // 23):
        bag = tmp_path / f"cut_{cut}"
        shutil.copytree(tmp_path / "clean", bag)
        _storage_file(bag).write_bytes(data[:cut])
        stamps, fault = _read_stamps(bag, LABEL_TOPIC)
        expected = [stamp for (stamp, _), end in zip(written, ends) if end <= cut]
        assert stamps == expected, cut
        assert fault is not None and "cut off" in str(fault)


def test_sqlite_cut_at_many_points_reads_a_prefix(tmp_path):
    written = _random_bag(tmp_path / "clean", "sqlite3", frames=60)
    data = _storage_file(tmp_path / "clean").read_bytes()
    counts = []
    for cut in range(len(data) // 4, len(data), len(data) // 9):
        bag = tmp_path / f"cut_{cut}"
        shutil.copytree(tmp_path / "clean", bag)
        _storage_file(bag).write_bytes(data[:cut])
        try:
            stamps, _ = _read_stamps(bag, LABEL_TOPIC)
        except BagError:
            stamps = []  # the cut took the topics table: nothing to name the messages by
        assert stamps == [stamp for stamp, _ in written[:len(stamps)]], cut
        counts.append(len(stamps))
    assert counts == sorted(counts) and counts[-1] >= 0.8 * len(written)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_without_metadata_yaml_reads_from_the_storage_file(tmp_path, storage):
    written = _random_bag(tmp_path / "bag", storage)
    (tmp_path / "bag" / "metadata.yaml").unlink()
    with BagReader(tmp_path / "bag") as reader:
        assert "no metadata.yaml" in reader.salvage
    stamps, fault = _read_stamps(tmp_path / "bag", LABEL_TOPIC)
    assert stamps == [stamp for stamp, _ in written] and fault is None


def test_folder_without_metadata_names_metadata_yaml(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="metadata.yaml"):
        BagReader(tmp_path / "empty")


def test_dashing_type_names_are_accepted(tmp_path, tiny_segmenter):
    _random_bag(tmp_path / "bag", "sqlite3", frames=3)
    meta = tmp_path / "bag" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("sensor_msgs/msg/Image", "sensor_msgs/Image"))
    with sqlite3.connect(_storage_file(tmp_path / "bag")) as db:
        db.execute("UPDATE topics SET type = 'sensor_msgs/Image'")
    assert "sensor_msgs/Image" in meta.read_text()
    result = evaluate_bag(tmp_path / "bag", IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "out",
                          tiny_segmenter,
                          options=EvalOptions(output_bag=False, progress=False))
    assert result.error is None and result.report["frames"] == 3


def _zero_middle_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = (len(data) // 2) // 4096 * 4096
    data[start:start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


def test_corrupt_sqlite_page_mid_bag_exits_2_with_a_partial_report(tmp_path, tiny_onnx_model,
                                                                   capsys):
    written = _random_bag(tmp_path / "bag", "sqlite3", frames=60)
    _zero_middle_page(_storage_file(tmp_path / "bag"))
    code = main(["eval", "--bag", str(tmp_path / "bag"), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--model", str(tiny_onnx_model), "--out",
                 str(tmp_path / "out"), "--no-output-bag", "--no-progress"])
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "malformed" in err or "damaged" in err
    assert 0 < report["frames"] < len(written)
    assert "last good" in report["stopped_by"] and report["last_good_stamp_ns"] is not None


def test_cut_mcap_eval_scores_every_frame_before_the_cut(tmp_path, tiny_segmenter):
    written = _random_bag(tmp_path / "bag", "mcap")
    path = _storage_file(tmp_path / "bag")
    data = path.read_bytes()
    cut = data.index(written[7][1])  # inside frame 7's label
    path.write_bytes(data[:cut])
    result = evaluate_bag(tmp_path / "bag", IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "out",
                          tiny_segmenter,
                          options=EvalOptions(output_bag=False, progress=False))
    report = result.report
    assert isinstance(result.error, StorageFault)
    assert report["frames"] == 7 and report["last_good_stamp_ns"] == written[6][0]
    assert "File end magic" in report["salvage"] and "storage error" in report["stopped_by"]


def test_quick_fault_injection_has_no_traceback(tmp_path, tiny_onnx_model):
    results = bench_faults.run(cases=1, frames=10, seed=1, model=tiny_onnx_model)
    assert len(results) == len(bench_faults.STORAGES) * len(bench_faults.KINDS)
    cases = [case for outcome in results.values() for case in outcome]
    assert not any(case.traceback for case in cases)
    assert all(case.clean for case in cases)
    truncated = [case for (_, kind), outcome in results.items() if kind == "truncate"
                 for case in outcome]
    assert all(case.scored >= case.before_damage for case in truncated)


def test_segment_only_without_labels_writes_only_the_output_bag(tmp_path, tiny_segmenter):
    bag = write_synthetic_bag(tmp_path / "bag", 3, 32, 24, progress=False)
    result = evaluate_bag(bag, IMAGE_TOPIC, None, tmp_path / "out", tiny_segmenter,
                          options=EvalOptions(progress=False))
    assert result.report["frames"] == 3 and result.paths == {}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["output_bag"]
    with BagReader(tmp_path / "out" / "output_bag") as out:
        assert out.message_count("/camera/dice_seg/mask") == 3
    with pytest.raises(ValueError, match="no-output-bag"):
        evaluate_bag(bag, IMAGE_TOPIC, None, tmp_path / "x", tiny_segmenter,
                     options=EvalOptions(output_bag=False, progress=False))
