"""dice-seg eval --traversability: grids into the output bag, scored against the labels' grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import image_msg

from dice_seg_ros.bags.bag_io import BagReader, BagWriter, make_header
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
from dice_seg_ros.bags.grid_eval import read_grid_params
from dice_seg_ros.bags.synthetic_bag import (IMAGE_TOPIC, INFO_TOPIC, LABEL_TOPIC, START_NS,
                                             camera_info)
from dice_seg_ros.classes import load_classes
from dice_seg_ros.cli import main
from dice_seg_ros.errors import DiceSegError
from dice_seg_ros.ros.node_params import TRAVERSABILITY_PARAMS
from dice_seg_ros.runtime.inference import Segmentation
from dice_seg_ros.runtime.pairing import header_stamp_ns
from dice_seg_ros.runtime.traversability import CameraPose, GridSpec, GroundProjection

W, H = 160, 120
HEIGHT, PITCH = 1.0, 0.35
# Focal length that puts the bottom image row on the ground 0.97 m ahead (issue 17's case).
F = (H / 2) / math.tan(math.atan(HEIGHT / 0.97) - PITCH)
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
SKY, TRAIL, OBSTACLE = 0, 2, 3
GRID = GridSpec(resolution=0.1, range=6.0, width=4.0)
GRID_TOPIC = "/camera/dice_seg/traversability"
FRAMES = 3
REPO = Path(__file__).resolve().parents[2]


def quarters_mask() -> np.ndarray:
    """Top half sky, next quarter trail, bottom quarter obstacle."""
    mask = np.full((H, W), SKY, np.uint8)
    mask[H // 2: 3 * H // 4] = TRAIL
    mask[3 * H // 4:] = OBSTACLE
    return mask


def write_params(path: Path, **values: float) -> Path:
    """Write a node parameters file with the issue's camera pose and the test grid."""
    params = {"traversability.camera_height": HEIGHT, "traversability.camera_pitch": PITCH,
              "traversability.range": GRID.range, "traversability.width": GRID.width}
    params.update({f"traversability.{name}": value for name, value in values.items()})
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}), encoding="utf-8")
    return path


def write_bag(path: Path, with_info: bool = True) -> Path:
    """Write FRAMES grey images labelled with the quarters mask, and K as camera_info."""
    rgb = np.full((H, W, 3), 128, np.uint8)
    with BagWriter(path) as bag:
        for k in range(FRAMES):
            stamp = START_NS + k * 100_000_000
            if with_info:
                info = camera_info(make_header(stamp, "camera_optical_frame"), W, H)
                info.k = K.ravel().copy()
                bag.write(INFO_TOPIC, stamp, info)
            bag.write(IMAGE_TOPIC, stamp, image_msg(rgb, stamp))
            bag.write(LABEL_TOPIC, stamp, image_msg(quarters_mask(), stamp, "mono8"))
    return path


def predict(monkeypatch, segmenter, mask: np.ndarray) -> None:
    """Make ``segmenter`` return ``mask`` for every image."""
    def segment_batch(images, with_confidence=False):
        timings = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        return [Segmentation(mask.copy(), timings_ms=timings) for _ in images]

    monkeypatch.setattr(segmenter, "segment_batch", segment_batch)


def run_eval(tmp_path, segmenter, params: Path, bag: Path | None = None):
    bag = bag or write_bag(tmp_path / "bag")
    return evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "out", segmenter,
                        EvalOptions(progress=False, traversability=params))


def truth_cells() -> tuple[int, int]:
    """(free, lethal) cells of the labels' grid, projected here without eval."""
    projection = GroundProjection(K, CameraPose(HEIGHT, PITCH).matrix(), (W, H), GRID)
    costs = projection.costs(quarters_mask(), load_classes().cost_table())
    return int(((costs >= 0) & (costs < 100)).sum()), int((costs == 100).sum())


def test_grid_per_frame_in_the_output_bag_where_flat_ground_puts_it(
        tmp_path, tiny_segmenter, monkeypatch):
    predict(monkeypatch, tiny_segmenter, quarters_mask())
    result = run_eval(tmp_path, tiny_segmenter, write_params(tmp_path / "p.yaml"))
    grid = result.report["traversability"]
    assert grid["topic"] == GRID_TOPIC and grid["frames_scored"] == FRAMES
    assert grid["dice"] == {"free": 1.0, "lethal": 1.0} and grid["mean_iou"] == 1.0
    with BagReader(result.report["output_bag"]) as reader:
        assert reader.topics()[GRID_TOPIC] == "nav_msgs/msg/OccupancyGrid"
        images = [header_stamp_ns(m.msg.header) for m in reader.messages([IMAGE_TOPIC])]
        grids = [m.msg for m in reader.messages([GRID_TOPIC])]
    assert [header_stamp_ns(g.header) for g in grids] == images and len(images) == FRAMES
    msg = grids[0]
    assert msg.header.frame_id == "base_link"
    assert (msg.info.width, msg.info.height) == (60, 40)
    assert msg.info.resolution == pytest.approx(0.1)
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == (0.0, -2.0)
    costs = np.asarray(msg.data, np.int8).reshape(40, 60)
    # Cell centres ahead, x metres: obstacle rows meet the ground 0.97-1.51 m ahead, trail
    # rows 1.51-2.74 m; nothing beyond the horizon row, nothing under the bottom row.
    x = (np.arange(60) + 0.5) * 0.1
    lethal_x = x[(costs == 100).any(0)]
    free_x = x[(costs == 0).any(0)]
    assert lethal_x.min() > 0.9 and lethal_x.max() < 1.6
    assert free_x.min() > 1.4 and free_x.max() < 2.8
    assert (costs[:, x < 0.9] == -1).all() and (costs[:, x > 2.8] == -1).all()


def test_a_missed_obstacle_scores_lethal_zero_and_free_by_its_cells(
        tmp_path, tiny_segmenter, monkeypatch):
    missed = quarters_mask()
    missed[missed == OBSTACLE] = TRAIL
    predict(monkeypatch, tiny_segmenter, missed)
    result = run_eval(tmp_path, tiny_segmenter, write_params(tmp_path / "p.yaml"))
    grid = result.report["traversability"]
    free, lethal = truth_cells()
    assert free > 10 and lethal > 10
    assert grid["cells_scored"] == FRAMES * (free + lethal)
    assert grid["dice"]["lethal"] == 0.0
    assert grid["dice"]["free"] == pytest.approx(2 * free / (2 * free + lethal))
    assert grid["iou"]["free"] == pytest.approx(free / (free + lethal))


def test_cli_prints_the_grid_scores(tmp_path, tiny_onnx_model, capsys):
    code = main(["eval", "--bag", str(write_bag(tmp_path / "bag")), "--image-topic",
                 IMAGE_TOPIC, "--label-topic", LABEL_TOPIC, "--model", str(tiny_onnx_model),
                 "--out", str(tmp_path / "out"), "--no-progress", "--traversability",
                 str(write_params(tmp_path / "p.yaml"))])
    assert code == 0
    assert "traversability grid (3 frames" in capsys.readouterr().out


def test_without_labels_the_grid_is_written_and_not_scored(tmp_path, tiny_onnx_model, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--bag", str(write_bag(tmp_path / "bag")), "--image-topic",
                 IMAGE_TOPIC, "--model", str(tiny_onnx_model), "--out", str(out),
                 "--no-progress", "--traversability", str(write_params(tmp_path / "p.yaml"))])
    assert code == 0
    assert f"traversability grid: {GRID_TOPIC}; no label scored it" in capsys.readouterr().out
    with BagReader(out / "output_bag") as reader:
        assert reader.message_count(GRID_TOPIC) == FRAMES


@pytest.mark.parametrize("case", ["unknown_name", "out_of_range", "not_params", "no_info"])
def test_cli_errors_name_the_fault(case, tmp_path, tiny_onnx_model, capsys):
    params = write_params(tmp_path / "p.yaml")
    bag = tmp_path / "bag"
    if case == "unknown_name":
        write_params(params, camera_hieght=1.0)
    elif case == "out_of_range":
        write_params(params, camera_height=-1.0)
    elif case == "not_params":
        params.write_text("traversability.camera_height: 1.0\n", encoding="utf-8")
    write_bag(bag, with_info=case != "no_info")
    code = main(["eval", "--bag", str(bag), "--image-topic", IMAGE_TOPIC, "--label-topic",
                 LABEL_TOPIC, "--model", str(tiny_onnx_model), "--out", str(tmp_path / "out"),
                 "--no-progress", "--traversability", str(params)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    expected = {"unknown_name": "traversability.camera_hieght",
                "out_of_range": "traversability.camera_height",
                "not_params": "ros__parameters", "no_info": INFO_TOPIC}[case]
    assert expected in err


def test_shipped_and_nested_parameter_files_are_read(tmp_path):
    shipped = read_grid_params(REPO / "config" / "segmentation.yaml")
    assert shipped == {spec.name: spec.default for spec in TRAVERSABILITY_PARAMS}
    nested = tmp_path / "nested.yaml"
    nested.write_text(yaml.safe_dump({"/cam/dice_seg": {"ros__parameters": {
        "traversability": {"camera_height": 1.5, "camera_pitch": 0.2}}}}), encoding="utf-8")
    assert read_grid_params(nested) == {"traversability.camera_height": 1.5,
                                        "traversability.camera_pitch": 0.2}
    with pytest.raises(DiceSegError, match="missing.yaml"):
        read_grid_params(tmp_path / "missing.yaml")
