"""The flywheel as a user runs it: bags -> mine -> CVAT export -> finetune -> eval and fleet."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SMALL_H, SMALL_W

torch = pytest.importorskip("torch")

from dice_seg_ros.bags.bag_io import BagReader  # noqa: E402
from dice_seg_ros.bags.synthetic_bag import (IMAGE_TOPIC, LABEL_TOPIC,  # noqa: E402
                                             write_synthetic_bag)
from dice_seg_ros.classes import load_classes  # noqa: E402
from dice_seg_ros.cli import main  # noqa: E402
from dice_seg_ros.data.datasets import open_dataset  # noqa: E402
from dice_seg_ros.learn import train as train_mod  # noqa: E402
from dice_seg_ros.runtime.image_conversion import label_id_pixels  # noqa: E402
from dice_seg_ros.runtime.pairing import header_stamp_ns  # noqa: E402

torch.set_num_threads(1)
# What a labeling team's CVAT project might use: its own names and colours, a background.
CVAT_LABELS = {"background": (0, 0, 0), "Sky": (61, 245, 61), "meadow": (42, 125, 209),
               "Trail": (250, 50, 83), "rock": (255, 204, 51), "Water": (51, 221, 255),
               "Tree": (184, 61, 245)}
REMAP = "meadow: grass\nrock: obstacle\n"


def labels_at(bag: Path, stamps: set[int]) -> dict[int, np.ndarray]:
    """Return the ground-truth class ids of the bag's label topic at ``stamps``."""
    found = {}
    with BagReader(bag) as reader:
        for message in reader.messages([LABEL_TOPIC]):
            stamp = header_stamp_ns(message.msg.header)
            if stamp in stamps:
                found[stamp] = label_id_pixels(message.msg)
    return found


def cvat_export(picks: Path, export: Path) -> None:
    """Label the mined frames from the bags' ground truth and save them as CVAT does."""
    with open(picks / "manifest.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    (export / "SegmentationClass").mkdir(parents=True)
    (export / "ImageSets" / "Segmentation").mkdir(parents=True)
    (export / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{name}:{','.join(map(str, rgb))}::\n" for name, rgb in CVAT_LABELS.items()))
    # Project class id k (sky, grass, trail, obstacle, water, tree) -> CVAT label k + 1.
    colours = np.array(list(CVAT_LABELS.values()), np.uint8)
    names = []
    for row in rows:
        stamp = int(row["stamp_ns"])
        ids = labels_at(Path(row["bag"]), {stamp})[stamp]
        name = Path(row["image"]).stem
        names.append(name)
        cv2.imwrite(str(export / "SegmentationClass" / f"{name}.png"),
                    colours[ids.astype(np.int64) + 1][..., ::-1])
    (export / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(names))


def test_the_loop_from_bags_to_a_fitted_model(tmp_path, calibrated_tiny_model):
    drives = tmp_path / "drives"
    for seed in (11, 12):
        write_synthetic_bag(drives / f"drive{seed}", frames=10, width=SMALL_W, height=SMALL_H,
                            seed=seed, progress=False)
    picks = tmp_path / "picks"
    assert main(["mine", "--bags", str(drives), "--count", "6", "--out", str(picks),
                 "--model", str(calibrated_tiny_model), "--window-s", "0.2",
                 "--no-progress"]) == 0
    export = tmp_path / "cvat_export"
    cvat_export(picks, export)
    (tmp_path / "remap.yaml").write_text(REMAP)
    labeled = open_dataset(export, "cvat", load_classes(), tmp_path / "remap.yaml",
                           images=picks / "images")
    first = labeled.pairs[0].label.stem
    stamp = int(first.rsplit("_", 1)[1])
    truth = labels_at(drives / first.rsplit("_", 1)[0], {stamp})[stamp]
    assert (labeled[0][1] == truth).all()  # other colours and names, the same classes

    # Starting weights: a tiny network, as the shipped .pt would be on a robot team's laptop.
    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    train_mod.train(parser.parse_args([
        "--input-size", "48x32", "--width-mult", "0.5", "--batch-size", "4",
        "--train-scenes", "8", "--val-scenes", "4", "--threads", "1", "--quiet", "--epochs",
        "1", "--out", str(tmp_path / "init")]))
    run = tmp_path / "run"
    assert main(["finetune", "--data", str(export), "--format", "cvat", "--images",
                 str(picks / "images"), "--remap", str(tmp_path / "remap.yaml"), "--init",
                 str(tmp_path / "init" / "best.pt"), "--out", str(run), "--steps", "4",
                 "--threads", "1", "--quiet"]) == 0
    summary = json.loads((run / "finetune.json").read_text())
    assert summary["train_frames"] == 6
    model = run / "model.onnx"
    assert model.is_file()

    report_dir = tmp_path / "eval"
    assert main(["eval", "--bag", str(drives / "drive11"), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--model", str(model), "--out",
                 str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["frames"] == 10 and 0.0 <= report["mean_dice"] <= 1.0
    assert main(["fleet", "--bags", str(drives), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--model", str(model), "--out",
                 str(tmp_path / "fleet")]) == 0
    fleet = json.loads((tmp_path / "fleet" / "fleet.json").read_text())
    assert fleet["frames"] == 20
