"""~/traversability end to end: segmentation_node as a process, a fixed-mask model, rclpy."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import rclpy_graph

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy does not import: no ROS 2 installation sourced (source setup.bash)")
onnx = pytest.importorskip("onnx")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dice_seg_ros.classes import load_classes  # noqa: E402
from dice_seg_ros.runtime.image_conversion import numpy_to_image  # noqa: E402

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
DOMAIN = 100 + (os.getpid() + 53) % 100
W, H = 640, 480
HEIGHT, PITCH = 1.0, 0.35
# Focal length that puts the bottom image row on the ground 0.97 m ahead.
F = (H / 2) / math.tan(math.atan(HEIGHT / 0.97) - PITCH)
NET_W, NET_H = 64, 48


def fixed_mask_model(folder: Path) -> Path:
    """Write an ONNX model from elsewhere (sidecar YAML, no metadata) with a fixed mask.

    Whatever the image, its logits say: top half sky, next quarter trail, bottom quarter
    obstacle.
    """
    classes = load_classes()
    ids = np.zeros((NET_H, NET_W), np.int64)
    ids[NET_H // 2: 3 * NET_H // 4] = classes.index("trail")
    ids[3 * NET_H // 4:] = classes.index("obstacle")
    logits = (np.eye(classes.num_classes, dtype=np.float32)[ids].transpose(2, 0, 1) * 10)[None]
    zeros = np.zeros((classes.num_classes, 3, 1, 1), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["zero"]),
         helper.make_node("Add", ["zero", "fixed"], ["logits"])],
        "fixed_mask",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, NET_H, NET_W])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", classes.num_classes, NET_H, NET_W])],
        [helper.make_tensor("w", TensorProto.FLOAT, zeros.shape, zeros.ravel()),
         helper.make_tensor("fixed", TensorProto.FLOAT, logits.shape, logits.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "fixed.onnx"
    onnx.save(model, path)
    entries = "\n".join(f"  - {{name: {n}, color: {list(map(int, c))}}}"
                        for n, c in zip(classes.names, classes.colors))
    Path(f"{path}.yaml").write_text(
        f"input_size: [{NET_W}, {NET_H}]\nmean: [0.5, 0.5, 0.5]\nstd: [0.25, 0.25, 0.25]\n"
        f"output: logits\nclasses:\n{entries}\n")
    return path


def start_node(model: Path, *params: str) -> subprocess.Popen:
    """Start segmentation_node in /cam with the grid enabled, on the fixed-mask model."""
    script = shutil.which("segmentation_node", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("console script segmentation_node not installed (pip install -e .)")
    args = ["-r", "__ns:=/cam", "-p", f"model_path:={model}", "-p", "qos_reliability:=reliable",
            "-p", "device:=cpu", "-p", "traversability.enabled:=true",
            "-p", f"traversability.camera_height:={HEIGHT}",
            "-p", f"traversability.camera_pitch:={PITCH}", *params]
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONUNBUFFERED="1")
    return subprocess.Popen([script, "--ros-args", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def camera_info(header: Header) -> CameraInfo:
    info = CameraInfo(header=header, width=W, height=H)
    info.k = [F, 0.0, W / 2, 0.0, F, H / 2, 0.0, 0.0, 1.0]
    return info


def cell_x(grid: OccupancyGrid) -> np.ndarray:
    """Grid-frame x (metres) of the near and far edge of every cell column: (2, width)."""
    near = grid.info.origin.position.x + np.arange(grid.info.width) * grid.info.resolution
    return np.stack([near, near + grid.info.resolution])


def test_fixed_mask_grid_matches_flat_ground_geometry(tmp_path):
    proc = start_node(fixed_mask_model(tmp_path), "-p", "traversability.range:=4.0",
                      "-p", "traversability.width:=3.0")
    try:
        with rclpy_graph(domain_id=DOMAIN, timeout_s=40.0) as (context, add, spin_until):
            node = add(rclpy.create_node("grid_test", context=context))
            images = node.create_publisher(Image, "/cam/image", RELIABLE)
            infos = node.create_publisher(CameraInfo, "/cam/camera_info", RELIABLE)
            grids, masks, diagnostics = [], [], []
            node.create_subscription(OccupancyGrid, "/cam/dice_seg/traversability",
                                     grids.append, RELIABLE)
            node.create_subscription(Image, "/cam/dice_seg/mask", masks.append,
                                     RELIABLE)
            node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
            assert spin_until(lambda: images.get_subscription_count() > 0), \
                proc.stdout.read() if proc.poll() is not None else "node did not subscribe"
            frame = np.zeros((H, W, 3), np.uint8)

            def send(sec: int, with_info: bool) -> None:
                header = Header(frame_id="cam_optical")
                header.stamp.sec = sec
                if with_info:
                    infos.publish(camera_info(header))
                    spin_until(lambda: False, timeout=0.2)
                images.publish(numpy_to_image(frame, "rgb8", header, Image))

            # Without camera_info: masks still come, /diagnostics says why there is no grid.
            send(1, with_info=False)
            assert spin_until(lambda: masks)
            assert spin_until(lambda: any("camera_info" in v.value for d in diagnostics
                                          for s in d.status for v in s.values
                                          if v.key == "traversability"))
            assert not grids
            send(2, with_info=True)
            assert spin_until(lambda: grids)
    finally:
        proc.kill()
        proc.wait()
    grid = grids[-1]
    assert grid.header.stamp.sec == 2 and grid.header.frame_id == "base_link"
    assert grid.info.resolution == pytest.approx(0.1)
    costs = np.array(grid.data, np.int8).reshape(grid.info.height, grid.info.width)
    near, far = cell_x(grid)
    centre = costs[grid.info.height // 2]
    inside = lambda low, high: (near >= low - 1e-6) & (far <= high + 1e-6)  # noqa: E731
    # Obstacle rows meet the ground 0.97-1.51 m ahead, trail rows 1.51-2.74 m.
    assert (centre[inside(1.0, 1.5)] == 100).all()
    assert (centre[inside(1.6, 2.7)] == 0).all()
    lethal_columns = np.flatnonzero((costs == 100).any(0))
    assert near[lethal_columns].min() >= 0.9 - 1e-6 and far[lethal_columns].max() <= 1.6 + 1e-6
    assert (costs[:, inside(0.0, 0.9)] == -1).all()          # below the camera's view
    assert (costs[:, near >= 2.8] != 100).all()               # no lethal cell beyond


def test_grid_parameter_out_of_range_stops_the_node_with_its_name(tmp_path):
    proc = start_node(fixed_mask_model(tmp_path), "-p", "traversability.resolution:=0.0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "traversability.resolution" in out and "Traceback" not in out


def test_two_cameras_fuse_into_the_nodes_grid(tmp_path):
    proc = start_node(fixed_mask_model(tmp_path), "-p",
                      "image_topics:=[/front/image, /rear/image]",
                      "-p", "traversability.range:=6.0", "-p", "traversability.width:=4.0")
    focal = {"front": F, "rear": 2 * F}   # the rear camera sees further: another footprint
    try:
        with rclpy_graph(domain_id=DOMAIN, timeout_s=40.0) as (context, add, spin_until):
            node = add(rclpy.create_node("fuse_test", context=context))
            images = {n: node.create_publisher(Image, f"/{n}/image", RELIABLE) for n in focal}
            infos = {n: node.create_publisher(CameraInfo, f"/{n}/camera_info", RELIABLE)
                     for n in focal}
            grids = {n: [] for n in (*focal, "fused")}
            for name in focal:
                node.create_subscription(OccupancyGrid, f"/{name}/dice_seg/traversability",
                                         grids[name].append, RELIABLE)
            node.create_subscription(OccupancyGrid, "/cam/dice_seg/traversability",
                                     grids["fused"].append, RELIABLE)
            assert spin_until(lambda: all(p.get_subscription_count() for p in images.values())
                              and all(p.get_subscription_count() for p in infos.values())), \
                proc.stdout.read() if proc.poll() is not None else "node did not subscribe"
            header = Header(frame_id="optical")
            header.stamp.sec = 5
            for name, publisher in infos.items():
                info = camera_info(header)
                info.k[0] = info.k[4] = focal[name]
                publisher.publish(info)
            spin_until(lambda: False, timeout=0.3)
            for publisher in images.values():
                publisher.publish(numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", header,
                                                 Image))
            assert spin_until(lambda: grids["front"] and grids["rear"]
                              and len(grids["fused"]) >= 2)
    finally:
        proc.kill()
        proc.wait()

    def costs(grid: OccupancyGrid) -> np.ndarray:
        return np.array(grid.data, np.int8).reshape(grid.info.height, grid.info.width)

    front, rear, fused = (costs(grids[n][-1]) for n in ("front", "rear", "fused"))
    assert not np.array_equal(front, rear)
    np.testing.assert_array_equal(fused, np.maximum(front, rear))
    # Each camera adds to the other: rear's obstacle lies on front's trail, front sees nearer.
    assert (fused == 100).sum() > (front == 100).sum() and (fused >= 0).sum() > (rear >= 0).sum()
    assert grids["fused"][-1].header.stamp.sec == 5
    assert grids["fused"][-1].header.frame_id == "base_link"
