"""dice-seg mine: least sure first, spread, no duplicates, resumable, CVAT round trip, errors."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from conftest import SMALL_H, SMALL_W, image_msg

from dice_seg_ros.bags import mine as mine_mod
from dice_seg_ros.bags.bag_io import BagWriter
from dice_seg_ros.bags.synthetic_bag import START_NS, write_synthetic_bag
from dice_seg_ros.classes import load_classes
from dice_seg_ros.cli import main
from dice_seg_ros.data.datasets import open_dataset
from dice_seg_ros.data.synthetic import generate_scene


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Two 12-frame labeled bags of generated scenes."""
    folder = tmp_path_factory.mktemp("drives")
    for seed in (1, 2):
        write_synthetic_bag(folder / f"drive{seed}", frames=12, width=SMALL_W, height=SMALL_H,
                            seed=seed, progress=False)
    return folder


def rows(out):
    """Return the manifest's rows."""
    with open(out / "manifest.csv", newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_mining_writes_the_least_sure_frames_with_prelabels_and_sheet(
        bags, tmp_path, calibrated_tiny_model):
    out = tmp_path / "picks"
    argv = ["mine", "--bags", str(bags), "--count", "4", "--out", str(out), "--model",
            str(calibrated_tiny_model), "--window-s", "0", "--min-distance", "0",
            "--no-progress"]
    assert main(argv) == 0
    picked = rows(out)
    assert len(picked) == 4
    assert {"image", "bag", "stamp_ns", "estimated_dice", "reason"} <= set(picked[0])
    assert all(float(r["bag_time_s"]) == pytest.approx((int(r["stamp_ns"]) - START_NS) / 1e9)
               for r in picked)
    estimates = [float(r["estimated_dice"]) for r in picked]
    assert estimates == sorted(estimates)
    every = [c.estimate for f in sorted((out / "scores").glob("*.npz"))
             for c in mine_mod.load_candidates(f)]
    assert len(every) == 24 and estimates == pytest.approx(sorted(every)[:4], abs=1e-4)
    for row in picked:
        image = cv2.imread(str(out / row["image"]))
        prelabel = cv2.imread(str(out / row["prelabel"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SMALL_H, SMALL_W, 3) and prelabel.shape == (SMALL_H, SMALL_W)
    assert cv2.imread(str(out / "contact_sheet.png")) is not None
    # The CVAT pre-label set reads back as the pre-labels themselves.
    cvat = open_dataset(out / "cvat_prelabels", "cvat", load_classes(), images=out / "images")
    assert len(cvat) == 4
    _, ids = cvat[0]
    first = sorted(picked, key=lambda r: r["image"])[0]
    assert (ids == cv2.imread(str(out / first["prelabel"]), cv2.IMREAD_UNCHANGED)).all()


def test_rerun_reuses_the_scans(bags, tmp_path, calibrated_tiny_model, monkeypatch):
    out = tmp_path / "picks"
    argv = ["mine", "--bags", str(bags), "--count", "2", "--out", str(out), "--model",
            str(calibrated_tiny_model), "--window-s", "0", "--no-progress"]
    assert main(argv) == 0

    def no_scan(*args):
        raise AssertionError("scanned again")
    monkeypatch.setattr(mine_mod, "scan_source", no_scan)
    assert main([*argv[:4], "3", *argv[5:]]) == 0
    assert len(rows(out)) == 3


def candidate(source, second, estimate, level):
    """Return a candidate of ``source`` at ``second`` with a flat thumbnail of ``level``."""
    return mine_mod.Candidate(source, second, int(second * 1e9), estimate,
                              np.full((24, 32), level, np.float16))


def test_selection_caps_bags_spreads_in_time_and_drops_duplicates():
    cands = [candidate("a", 0, 0.1, 0.1), candidate("a", 1, 0.2, 0.9),  # 1 s after a pick
             candidate("a", 10, 0.3, 0.5), candidate("a", 20, 0.35, 0.7),
             candidate("b", 0, 0.4, 0.1),  # looks like the first pick
             candidate("b", 5, 0.5, 0.3)]
    picks = mine_mod.select(cands, count=4, per_bag=2, window_s=5.0, min_distance=0.05)
    chosen = [(c.source, c.index) for c, _, _ in picks]
    assert chosen == [("a", 0), ("a", 10), ("b", 5)]
    assert [rank for _, rank, _ in picks] == [1, 3, 6]


def test_count_beyond_the_frames_is_one_line(bags, tmp_path, calibrated_tiny_model, capsys):
    argv = ["mine", "--bags", str(bags), "--count", "99", "--out", str(tmp_path / "o"),
            "--model", str(calibrated_tiny_model), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--count 99 is more than the 24 frames" in err and len(err.splitlines()) == 1


def test_bag_without_the_topic_is_named(bags, tmp_path, calibrated_tiny_model, capsys):
    argv = ["mine", "--bags", str(bags / "drive1"), "--image-topic", "/front/image",
            "--count", "1", "--out", str(tmp_path / "o"), "--model",
            str(calibrated_tiny_model), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "drive1" in err and "/front/image" in err


def test_model_without_calibration_is_refused(bags, tmp_path, tiny_onnx_model, capsys):
    argv = ["mine", "--bags", str(bags), "--count", "1", "--out", str(tmp_path / "o"),
            "--model", str(tiny_onnx_model), "--no-progress"]
    assert main(argv) == 2
    assert "no estimated-Dice calibration" in capsys.readouterr().err


def test_missing_bag_is_one_line_naming_it(tmp_path, calibrated_tiny_model, capsys):
    missing = tmp_path / "no_such_drive.mcap"
    argv = ["mine", "--bags", str(missing), "--count", "1", "--out", str(tmp_path / "o"),
            "--model", str(calibrated_tiny_model), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1


def test_unset_header_stamps_fall_back_to_log_times(tmp_path, calibrated_tiny_model):
    """A driver that leaves stamps at 0: log times spread the picks and name the files."""
    bag = tmp_path / "unstamped"
    with BagWriter(bag) as writer:
        for k in range(6):
            rgb, _ = generate_scene(40 + k, SMALL_W, SMALL_H)
            writer.write("/camera/image_raw", (k + 1) * 10**9, image_msg(rgb, 0))
    out = tmp_path / "o"
    argv = ["mine", "--bags", str(bag), "--count", "3", "--out", str(out), "--model",
            str(calibrated_tiny_model), "--window-s", "1.5", "--min-distance", "0",
            "--no-progress"]
    assert main(argv) == 0
    stamps = sorted(int(r["stamp_ns"]) for r in rows(out))
    assert len(stamps) == 3 and min(b - a for a, b in zip(stamps, stamps[1:])) >= 2 * 10**9
    for row in rows(out):
        k = int(row["stamp_ns"]) // 10**9 - 1
        rgb = cv2.imread(str(out / row["image"]))[..., ::-1]
        assert (rgb == generate_scene(40 + k, SMALL_W, SMALL_H)[0]).all()
