from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import SMALL_H, SMALL_W

from dice_seg_ros.bags import fleet
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
from dice_seg_ros.bags.fleet import FleetOptions, evaluate_fleet, find_bags, mean_dice_present
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.cli import main
from dice_seg_ros.runtime.metrics import dice_from_matrix


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Write two 3-frame bags, scenes 3-5 and 6-8, and one 6-frame bag of those scenes."""
    root = tmp_path_factory.mktemp("fleet")
    for name, seed in (("a", 3), ("b", 6)):
        write_synthetic_bag(root / "drives" / name, frames=3, width=SMALL_W, height=SMALL_H,
                            seed=seed, progress=False)
    write_synthetic_bag(root / "all", frames=6, width=SMALL_W, height=SMALL_H, seed=3,
                        progress=False)
    return root


@pytest.fixture()
def options(tiny_onnx_model):
    return FleetOptions(IMAGE_TOPIC, LABEL_TOPIC, model=str(tiny_onnx_model), threads=1)


def _fleet(bag_paths, options, out, **kwargs):
    kwargs.setdefault("progress", False)
    return evaluate_fleet(bag_paths, options, out, **kwargs)


def test_summed_matrices_equal_one_run_over_all_frames(bags, options, tiny_segmenter, tmp_path):
    run = _fleet(find_bags(bags / "drives"), options, tmp_path / "fleet")
    one = evaluate_bag(bags / "all", IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "one", tiny_segmenter,
                       options=EvalOptions(output_bag=False, progress=False)).report
    assert run.summary["confusion_matrix"] == one["confusion_matrix"]
    assert run.summary["dice"] == one["dice"]
    assert run.summary["mean_dice"] == one["mean_dice"]
    assert run.summary["frames"] == one["frames"] == 6
    per_bag = [np.asarray(r.confusion) for r in run.results]
    assert per_bag[0].sum() > 0 and not np.array_equal(per_bag[0], per_bag[1])


def test_processes_and_ray_local_give_the_sequential_numbers(bags, options, tmp_path):
    pytest.importorskip("ray", reason="Ray is the fleet extra (pip install .[fleet])")
    paths = find_bags(bags / "drives")
    runs = {"sequential": _fleet(paths, options, tmp_path / "seq"),
            "processes": _fleet(paths, options, tmp_path / "proc", workers=2),
            "ray": _fleet(paths, options, tmp_path / "ray", workers=2, ray="local")}
    reference = runs.pop("sequential")
    for name, run in runs.items():
        assert [r.confusion for r in run.results] == [r.confusion for r in reference.results], \
            name
        assert [r.frame_dice for r in run.results] == [r.frame_dice
                                                       for r in reference.results], name
        for key in ("confusion_matrix", "dice", "iou", "mean_dice", "worst_frames"):
            assert run.summary[key] == reference.summary[key], (name, key)


def test_failing_bag_is_recorded_and_the_others_are_scored(bags, tiny_onnx_model, tmp_path,
                                                           capsys):
    drives = tmp_path / "drives"
    shutil.copytree(bags / "drives", drives)
    (drives / "broken.mcap").write_bytes(b"not an mcap file")
    out = tmp_path / "out"
    code = main(["fleet", "--bags", str(drives), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--model", str(tiny_onnx_model), "--workers", "1",
                 "--out", str(out), "--no-progress"])
    assert code == 1
    assert "broken.mcap" in capsys.readouterr().out
    summary = json.loads((out / "fleet.json").read_text())
    assert summary["scored"] == 2 and summary["frames"] == 6
    assert [f["bag"] for f in summary["failed"]] == [str(drives / "broken.mcap")]
    with open(out / "bags.csv", newline="") as stream:
        rows = {r["bag"].rsplit("/", 1)[1]: r for r in csv.DictReader(stream)}
    assert rows["broken.mcap"]["error"] and rows["broken.mcap"]["mean_dice"] == ""
    assert rows["a"]["error"] == "" and int(rows["a"]["frames"]) == 3
    assert 0.0 <= float(rows["a"]["mean_dice"]) <= 1.0
    for plot in ("fleet_bags.png", "fleet_class_dice.png"):
        assert (out / plot).stat().st_size > 0


def test_rerun_skips_bags_by_content_unless_forced(bags, options, tmp_path):
    drives = tmp_path / "drives"
    shutil.copytree(bags / "drives", drives)
    out = tmp_path / "out"
    first = _fleet(find_bags(drives), options, out)
    assert first.summary["reused"] == 0
    (drives / "a").rename(drives / "renamed")
    again = _fleet(find_bags(drives), options, out)
    assert again.summary["reused"] == 2
    assert again.summary["confusion_matrix"] == first.summary["confusion_matrix"]
    assert _fleet(find_bags(drives), options, out, force=True).summary["reused"] == 0
    other = FleetOptions(IMAGE_TOPIC, LABEL_TOPIC, model=options.model,
                         evaluation=EvalOptions(max_offset_ms=5.0))
    assert _fleet(find_bags(drives), other, out).summary["reused"] == 0


def test_ctrl_c_keeps_the_bags_done(bags, options, tmp_path, monkeypatch):
    real = fleet.score_bag
    calls = []

    def interrupted_second(*args):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(fleet, "score_bag", interrupted_second)
    out = tmp_path / "out"
    run = _fleet(find_bags(bags / "drives"), options, out)
    assert run.stopped_by == "interrupted (Ctrl-C)"
    assert run.summary["scored"] == 1 and run.summary["not_scored"] == 1
    monkeypatch.setattr(fleet, "score_bag", real)
    resumed = _fleet(find_bags(bags / "drives"), options, out)
    assert resumed.summary["reused"] == 1 and resumed.summary["scored"] == 2


def test_find_bags_directory_glob_and_nothing(bags, tmp_path):
    assert [p.name for p in find_bags(bags / "drives")] == ["a", "b"]
    assert find_bags(bags / "all") == [bags / "all"]
    assert [p.name for p in find_bags(str(bags / "drives" / "*"))] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="no rosbag2"):
        find_bags(tmp_path)


def test_mean_dice_present_skips_classes_only_predicted():
    # Class 2 appears only in the prediction (Dice 0); the present-class mean ignores it.
    matrix = np.array([[8, 0, 2], [0, 10, 0], [0, 0, 0]])
    dice = dice_from_matrix(matrix)
    assert dice[2] == 0.0
    assert mean_dice_present(matrix) == pytest.approx((dice[0] + dice[1]) / 2)
