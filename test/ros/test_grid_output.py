"""The node's grid without rclpy: pose source (TF or parameters), camera_info, fusion."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TS

from dice_seg_ros.classes import load_classes
from dice_seg_ros.ros.grid_output import GridFusion, GridOutput, quaternion_matrix
from dice_seg_ros.runtime.traversability import CameraGrid, CameraPose, GridSpec

Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
W, H = 64, 48
F = 40.0
INFO = SimpleNamespace(k=[F, 0, W / 2, 0, F, H / 2, 0, 0, 1], width=W, height=H)
SPEC = GridSpec(resolution=0.2, range=6.0, width=6.0)
COSTS = load_classes().cost_table()


def header(sec: float, frame: str = "cam_optical") -> Header:
    return Header(stamp=Time(sec=int(sec), nanosec=int(round((sec % 1) * 1e9))),
                  frame_id=frame)


def trail_below_horizon() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[H // 2:] = load_classes().index("trail")
    return mask


def grid_output(lookup=None) -> GridOutput:
    return GridOutput(CameraGrid(SPEC, COSTS), CameraPose(1.0, 0.3).matrix(), lookup)


def test_without_camera_info_no_grid_and_the_state_says_why():
    output = grid_output()
    assert output.costs(trail_below_horizon(), header(1), None) is None
    assert not output.ok and "camera_info" in output.status_values()["traversability"]
    assert output.costs(trail_below_horizon(), header(2), INFO) is not None
    assert output.ok and output.status_values()["traversability"] == "camera pose from parameters"


def test_a_tf_pose_replaces_the_parameters_and_the_state_names_the_frame():
    tf_pose = CameraPose(2.0, 0.6, x=0.5).matrix()
    asked = []

    def lookup(frame, stamp):
        asked.append(frame)
        return tf_pose if frame == "cam_optical" else None

    output = grid_output(lookup)
    via_tf = output.costs(trail_below_horizon(), header(1), INFO)
    assert asked == ["cam_optical"]
    assert output.status_values()["traversability"] == "camera pose from tf (cam_optical)"
    expected = CameraGrid(SPEC, COSTS).costs(trail_below_horizon(), np.asarray(INFO.k),
                                             (W, H), tf_pose)
    np.testing.assert_array_equal(via_tf, expected)
    via_parameters = output.costs(trail_below_horizon(), header(2, "other_frame"), INFO)
    assert output.status_values()["traversability"] == "camera pose from parameters"
    assert not np.array_equal(via_parameters, via_tf)


def test_unusable_camera_info_is_reported_not_raised():
    output = grid_output()
    bad = SimpleNamespace(k=[0.0] * 9, width=W, height=H)
    assert output.costs(trail_below_horizon(), header(1), bad) is None
    assert "camera_info unusable" in output.status_values()["traversability"]


def test_fusion_keeps_the_worst_known_cost_and_drops_a_stale_camera():
    free = np.array([[0, -1, 20]], np.int8)
    lethal = np.array([[-1, 100, 0]], np.int8)
    fusion = GridFusion(max_age_s=1.0)
    np.testing.assert_array_equal(fusion.add("front", header(10.0), free), free)
    np.testing.assert_array_equal(fusion.add("left", header(10.5), lethal), [[0, 100, 20]])
    # front's grid is 1.5 s older than left's newest one: left alone.
    np.testing.assert_array_equal(fusion.add("left", header(11.5), lethal), lethal)


def test_quaternion_matrix_rotates_and_translates():
    half = math.sqrt(0.5)
    matrix = quaternion_matrix((1.0, 2.0, 3.0), (0.0, 0.0, half, half))  # 90 deg about z
    np.testing.assert_allclose(matrix @ [1.0, 0.0, 0.0, 1.0], [1.0, 3.0, 3.0, 1.0], atol=1e-12)
    assert quaternion_matrix((0, 0, 0), (0, 0, 0, 1)) == pytest.approx(np.eye(4))
