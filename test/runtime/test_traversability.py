"""Ground grid from a mask: flat-ground geometry checked against an independent projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dice_seg_ros.classes import load_classes
from dice_seg_ros.runtime.traversability import (CameraPose, GeometryError, GridSpec,
                                                 GroundProjection, fuse, scaled_intrinsics)

W, H = 640, 480
HEIGHT, PITCH = 1.0, 0.35
# Focal length that puts the bottom image row on the ground 0.97 m ahead (the case).
F = (H / 2) / math.tan(math.atan(HEIGHT / 0.97) - PITCH)
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
SKY, TRAIL, OBSTACLE = 0, 2, 3


def quarters_mask() -> np.ndarray:
    """Top half sky, next quarter trail, bottom quarter obstacle."""
    mask = np.full((H, W), SKY, np.uint8)
    mask[H // 2: 3 * H // 4] = TRAIL
    mask[3 * H // 4:] = OBSTACLE
    return mask


def project(x: np.ndarray, y: np.ndarray, height: float, pitch: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (u, v) of ground points (x, y) for a level camera pitched down, written directly."""
    forward = x * math.cos(pitch) + height * math.sin(pitch)
    down = -x * math.sin(pitch) + height * math.cos(pitch)
    return W / 2 + F * (-y) / forward, H / 2 + F * down / forward


def cell_corners(grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Grid-frame x, y of the four corners of every cell: arrays of (cells_y, cells_x, 4)."""
    ox, oy = grid.origin
    cols, rows = np.meshgrid(np.arange(grid.cells_x), np.arange(grid.cells_y))
    dx = np.array([0, 1, 0, 1]) * grid.resolution
    dy = np.array([0, 0, 1, 1]) * grid.resolution
    return (ox + cols[..., None] * grid.resolution + dx,
            oy + rows[..., None] * grid.resolution + dy)


def costs_for(pose: CameraPose, grid: GridSpec, mask: np.ndarray, k: np.ndarray = K
              ) -> np.ndarray:
    """Return the cost grid of ``mask`` seen by a camera at ``pose``."""
    projection = GroundProjection(k, pose.matrix(), (W, H), grid)
    return projection.costs(mask, load_classes().cost_table())


def test_quarters_mask_lands_where_flat_ground_geometry_says():
    grid = GridSpec(resolution=0.1, range=6.0, width=4.0)
    costs = costs_for(CameraPose(HEIGHT, PITCH), grid, quarters_mask())
    x, y = cell_corners(grid)
    u, v = project(x, y, HEIGHT, PITCH)
    in_columns = ((u >= 0) & (u < W)).all(-1)
    obstacle_only = in_columns & ((v >= 3 * H / 4) & (v < H)).all(-1)
    trail_only = in_columns & ((v >= H / 2) & (v < 3 * H / 4)).all(-1)
    below_view = (v >= H).all(-1)
    assert obstacle_only.sum() > 20 and trail_only.sum() > 50
    assert (costs[obstacle_only] == 100).all()
    assert (costs[trail_only] == 0).all()
    assert (costs[below_view] == -1).all()
    lethal = costs == 100
    # Every lethal cell touches the obstacle rows, which meet the ground 0.97-1.51 m ahead.
    assert (v[lethal].max(-1) >= 3 * H / 4 - 1).all()
    assert x[lethal].min() >= 0.9 - 1e-9 and x[lethal].max() <= 1.6 + 1e-9
    free = costs == 0
    assert x[free].min() >= 1.5 - 1e-9 and x[free].max() <= 2.8 + 1e-9
    assert 0.97 == pytest.approx(HEIGHT / math.tan(PITCH + math.atan((H / 2) / F)), abs=1e-6)
    assert 1.51 == pytest.approx(HEIGHT / math.tan(PITCH + math.atan((H / 4) / F)), abs=0.01)
    assert 2.74 == pytest.approx(HEIGHT / math.tan(PITCH), abs=0.01)


def test_roll_turns_the_footprint_about_the_optical_axis():
    grid = GridSpec(resolution=0.1, range=6.0, width=6.0)
    mask = np.full((H, W), TRAIL, np.uint8)
    centred = K.copy()
    centred[0, 2] = (W - 1) / 2  # pixel centres symmetric about the optical axis
    level = costs_for(CameraPose(HEIGHT, PITCH), grid, mask, centred) == 0
    left = costs_for(CameraPose(HEIGHT, PITCH, roll=0.2), grid, mask, centred) == 0
    right = costs_for(CameraPose(HEIGHT, PITCH, roll=-0.2), grid, mask, centred) == 0
    assert (level == level[::-1]).all()           # symmetric about y = 0
    assert (left == right[::-1]).all()            # opposite rolls mirror each other
    assert not (left == level).all()
    centre = (int(HEIGHT / math.tan(PITCH) / 0.1), grid.cells_y // 2)
    assert left[centre[1], centre[0]] and right[centre[1], centre[0]]


def test_steeper_pitch_brings_the_footprint_closer():
    grid = GridSpec(resolution=0.1, range=10.0, width=4.0)
    mask = np.full((H, W), TRAIL, np.uint8)
    shallow = costs_for(CameraPose(HEIGHT, 0.2), grid, mask) == 0
    steep = costs_for(CameraPose(HEIGHT, 0.6), grid, mask) == 0
    far = lambda free: np.flatnonzero(free.any(0)).max()  # noqa: E731
    assert far(steep) < far(shallow)


def test_camera_above_the_horizon_reaches_no_cell():
    grid = GridSpec()
    projection = GroundProjection(K, CameraPose(HEIGHT, -0.9).matrix(), (W, H), grid)
    assert projection.empty
    costs = projection.costs(quarters_mask(), load_classes().cost_table())
    assert (costs == -1).all()


def test_pixels_beyond_the_class_list_count_as_unknown():
    grid = GridSpec(resolution=0.2, range=4.0, width=2.0)
    mask = np.full((H, W), 255, np.uint8)
    assert (costs_for(CameraPose(HEIGHT, PITCH), grid, mask) == -1).all()


def test_a_small_share_of_obstacle_pixels_does_not_make_a_cell_lethal():
    grid = GridSpec(resolution=1.0, range=3.0, width=2.0, min_share=0.2)
    mask = np.full((H, W), TRAIL, np.uint8)
    mask[::20, ::20] = OBSTACLE  # 0.25 % of the pixels
    assert (costs_for(CameraPose(HEIGHT, PITCH), grid, mask) <= 0).all()


def test_fuse_keeps_the_worst_known_cost():
    a = np.array([[-1, 0, 100]], np.int8)
    b = np.array([[20, -1, 0]], np.int8)
    assert fuse([a, b]).tolist() == [[20, 0, 100]]


def test_intrinsics_scale_with_the_mask():
    k = scaled_intrinsics(K, (W, H), (W // 2, H // 2))
    assert k[0, 0] == pytest.approx(F / 2) and k[1, 2] == pytest.approx(H / 4)


@pytest.mark.parametrize("make, name", [
    (lambda: CameraPose(height=0.0, pitch=0.3), "camera_height"),
    (lambda: CameraPose(height=1.0, pitch=2.0), "camera_pitch"),
    (lambda: CameraPose(height=1.0, pitch=0.3, roll=float("nan")), "camera_roll"),
    (lambda: GridSpec(resolution=0.0), "resolution"),
    (lambda: GridSpec(range=-1.0), "range"),
    (lambda: GridSpec(resolution=0.01, range=1000, width=1000), "resolution"),
])
def test_out_of_range_parameters_name_themselves(make, name):
    with pytest.raises(GeometryError, match=f"traversability.{name} ="):
        make()


def test_mask_of_another_size_is_refused():
    projection = GroundProjection(K, CameraPose(HEIGHT, PITCH).matrix(), (W, H), GridSpec())
    with pytest.raises(ValueError, match="does not match"):
        projection.costs(np.zeros((10, 10), np.uint8), load_classes().cost_table())
