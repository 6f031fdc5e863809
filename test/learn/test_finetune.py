"""dice-seg finetune: run folder contents, held-out before/after report, split, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import pytest

torch = pytest.importorskip("torch")

from dice_seg_ros.cli import main  # noqa: E402
from dice_seg_ros.data.synthetic import generate_scene  # noqa: E402
from dice_seg_ros.learn import finetune as ft  # noqa: E402
from dice_seg_ros.learn import train as train_mod  # noqa: E402
from dice_seg_ros.runtime.inference import Segmenter  # noqa: E402

torch.set_num_threads(1)
FAST = ["--steps", "4", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory) -> Path:
    """Train a 48x32 network for one epoch: the starting weights of the runs below."""
    out = tmp_path_factory.mktemp("init")
    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    train_mod.train(parser.parse_args([
        "--input-size", "48x32", "--width-mult", "0.5", "--batch-size", "4",
        "--train-scenes", "8", "--val-scenes", "4", "--threads", "1", "--quiet",
        "--epochs", "1", "--out", str(out)]))
    return out / "best.pt"


def _folder(root: Path, count: int, seed: int = 100) -> Path:
    """Write ``count`` generated scenes as a ``folder`` dataset (images/ + id labels/)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(count):
        rgb, ids = generate_scene(seed + k, 96, 64)
        cv2.imwrite(str(root / "images" / f"f{k:03d}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / "labels" / f"f{k:03d}.png"), ids)
    return root


def test_few_frames_train_on_all_and_write_a_model_the_node_loads(tmp_path, tiny_init):
    data = _folder(tmp_path / "data", 6)
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(data), "--init", str(tiny_init), "--out", str(out),
                 *FAST]) == 0
    for name in ("model.onnx", "model.pt", "report.md", "curves.png", "finetune.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "finetune.json").read_text())
    assert (summary["train_frames"], summary["held_out"]) == (6, 0)
    assert summary["after_mean_dice"] is None
    assert "No frames were held out" in (out / "report.md").read_text()
    rgb, _ = generate_scene(1, 96, 64)
    mask = Segmenter(out / "model.onnx", "ort", "cpu", estimate_dice=False).segment(rgb)
    assert mask.class_ids.shape == (64, 96)


def test_enough_frames_hold_out_a_quarter_and_report_before_and_after(tmp_path, tiny_init):
    data = _folder(tmp_path / "data", 16)
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(data), "--init", str(tiny_init), "--out", str(out),
                 *FAST]) == 0
    summary = json.loads((out / "finetune.json").read_text())
    assert (summary["train_frames"], summary["held_out"]) == (12, 4)
    report = (out / "report.md").read_text()
    assert f"{summary['before_mean_dice']:.3f}" in report
    assert f"{summary['after_mean_dice']:.3f}" in report
    assert 0.0 <= summary["after_mean_dice"] <= 1.0


def test_holdout_split_is_spread_and_disjoint():
    train, held = ft.holdout_split(20, None)
    assert len(held) == 5 and not set(train) & set(held)
    assert sorted(train + held) == list(range(20))
    assert min(held) < 5 and max(held) >= 15
    assert ft.holdout_split(8, None) == (list(range(8)), [])
    assert ft.holdout_split(8, 2)[1] != []


def test_rerun_of_a_run_folder_resumes_from_its_last_checkpoint(tmp_path):
    parser = argparse.ArgumentParser()
    ft.add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--out", str(tmp_path)])
    recipe = ft.recipe_from_args(args)
    assert ft.training_args(args, recipe, Path("i.pt"), tmp_path).resume is None
    (tmp_path / "last.pt").write_bytes(b"")
    assert ft.training_args(args, recipe, Path("i.pt"), tmp_path).resume == str(
        tmp_path / "last.pt")


@pytest.mark.parametrize("extra, needle", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--holdout", "6"], "--holdout 6"),
    (["--generated-share", "-1"], "--generated-share"),
    (["--init", "missing.pt"], "missing.pt: no such checkpoint"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, tiny_init, capsys, extra, needle):
    data = _folder(tmp_path / "data", 6)
    argv = ["finetune", "--data", str(data), "--out", str(tmp_path / "run"), "--init",
            str(tiny_init), *FAST, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "model.onnx").exists()
