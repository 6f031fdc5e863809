from __future__ import annotations

import json

from conftest import shipped_model_or_skip

from dice_seg_ros.bags.evaluate import output_topics
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC
from dice_seg_ros.cli import main

FILES = ["report.json", "per_frame.csv", "dice_over_time.png", "confusion_matrix.png",
         "output_bag/metadata.yaml"]


def _demo(tmp_path, capsys, *extra):
    code = main(["demo", "--out", str(tmp_path / "demo"), "--frames", "3", "--width", "160",
                 "--height", "120", "--device", "cpu", "--no-progress", *extra])
    out = capsys.readouterr().out
    assert code == 0
    report_dir = tmp_path / "demo" / "report"
    for name in FILES:
        assert (report_dir / name).is_file(), name
    assert (tmp_path / "demo" / "bag" / "metadata.yaml").is_file()
    report = json.loads((report_dir / "report.json").read_text())
    assert report["frames"] == 3 and report["unpaired"] == 0 and report["stopped_by"] is None
    assert f"mean Dice: {report['mean_dice']:.3f}" in out
    assert str(report_dir / "report.json") in out
    assert output_topics(IMAGE_TOPIC)["overlay"] in out
    return report


def test_demo_with_shipped_model(tmp_path, capsys):
    shipped_model_or_skip()
    report = _demo(tmp_path, capsys)
    # A trained model on scenes like its training data: clearly better than chance
    # (six classes; random guessing gives mean Dice ~0.15).
    assert 0.4 < report["mean_dice"] <= 1.0
    assert report["model"].endswith("terrain_seg.onnx")


def test_demo_runs_twice_into_one_dir_with_any_model(tmp_path, capsys, tiny_onnx_model):
    for _ in range(2):
        report = _demo(tmp_path, capsys, "--model", str(tiny_onnx_model))
    assert 0.0 <= report["mean_dice"] <= 1.0
    assert report["model"] == str(tiny_onnx_model)


def test_demo_refuses_to_delete_a_foreign_dir(tmp_path, capsys, tiny_onnx_model):
    (tmp_path / "demo" / "bag").mkdir(parents=True)
    (tmp_path / "demo" / "bag" / "notes.txt").write_text("mine")
    code = main(["demo", "--out", str(tmp_path / "demo"), "--model", str(tiny_onnx_model),
                 "--no-progress"])
    assert code == 2 and "is not a bag" in capsys.readouterr().err
    assert (tmp_path / "demo" / "bag" / "notes.txt").is_file()
