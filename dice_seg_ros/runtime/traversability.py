"""A class-id mask under a pinhole camera -> a cost grid on flat ground (no ROS types).

The grid lies in a robot frame (``base_link`` by default: x forward, y left, z up), cells of
``resolution`` metres from ``x = 0`` to ``range`` metres ahead and ``width`` metres across,
centred on ``y = 0``. Each pixel's ray through the camera's intrinsics is cut with the ground
plane ``z = 0``; pixels whose ray never reaches the ground (the horizon and above) or lands
outside the grid fall on no cell. That pixel-to-cell map depends only on the camera geometry, so
it is built once per geometry (:class:`GroundProjection`), and a frame costs one gather and one
``np.bincount`` over the mask.

Cell rule: a class *counts* in a cell when it covers at least ``min_share`` of the pixels that
fall on the cell; the cell takes the highest cost among the classes that count (the worst case,
so a lone obstacle blob is not outvoted by the grass around it, while stray pixels are), and -1
(unknown) when no counting class has a known cost or no pixel reaches it. Costs follow
``nav_msgs/OccupancyGrid``: 0 free .. 100 lethal, -1 unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dice_seg_ros.errors import DiceSegError

UNKNOWN = -1
LETHAL = 100
# Pixels sampled per cell at most. Near cells get thousands of pixels, far ones a few; a cap
# bounds the per-frame work without changing which class covers a share of the cell.
PIXELS_PER_CELL = 24


class GeometryError(DiceSegError):
    """A camera pose, intrinsics or grid parameter is out of range."""


def _check(condition: bool, name: str, value: float, expected: str) -> None:
    """Raise GeometryError naming parameter ``name`` unless ``condition`` holds."""
    if not condition:
        raise GeometryError(f"traversability.{name} = {value!r} is out of range: {expected}")


@dataclass(frozen=True)
class CameraPose:
    """Pose of a camera's optical frame in the grid frame.

    Attributes:
        height: camera centre above the ground, metres (> 0).
        pitch: rotation about the grid frame's y axis, radians, positive looking down.
        x, y: camera centre in the grid frame, metres.
        roll: rotation about the viewing direction, radians, positive turning the image
            clockwise as seen by the camera.
        yaw: rotation about the grid frame's z axis, radians, positive looking left.

    """

    height: float
    pitch: float
    x: float = 0.0
    y: float = 0.0
    roll: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        """Check the ranges (a pitch of +-90 degrees or more has no meaningful horizon)."""
        _check(math.isfinite(self.height) and self.height > 0, "camera_height", self.height,
               "metres above the ground, > 0")
        for name, value in (("camera_pitch", self.pitch), ("camera_roll", self.roll)):
            _check(math.isfinite(value) and abs(value) < math.pi / 2, name, value,
                   "radians, between -pi/2 and pi/2")
        for name, value in (("camera_x", self.x), ("camera_y", self.y),
                            ("camera_yaw", self.yaw)):
            _check(math.isfinite(value), name, value, "a finite number")

    def matrix(self) -> np.ndarray:
        """Return the 4x4 transform from the optical frame (z forward, x right, y down)."""
        # Optical axes in a level robot frame: z_opt -> x, x_opt -> -y, y_opt -> -z.
        optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        roll = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        pitch = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        yaw = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        transform = np.eye(4)
        transform[:3, :3] = yaw @ pitch @ roll @ optical
        transform[:3, 3] = (self.x, self.y, self.height)
        return transform


@dataclass(frozen=True)
class GridSpec:
    """Extent of the grid in its frame.

    Attributes:
        resolution: cell edge, metres.
        range: how far ahead the grid reaches from ``x = 0``, metres.
        width: extent across, centred on ``y = 0``, metres.
        min_share: share of a cell's pixels a class needs to count in it (0..1].

    """

    resolution: float = 0.1
    range: float = 10.0
    width: float = 10.0
    min_share: float = 0.2

    def __post_init__(self) -> None:
        """Check the ranges; a grid of more than 4 million cells is a typo, not a plan."""
        _check(math.isfinite(self.resolution) and 0.01 <= self.resolution <= 10,
               "resolution", self.resolution, "metres per cell, 0.01 to 10")
        for name, value in (("range", self.range), ("width", self.width)):
            _check(math.isfinite(value) and self.resolution <= value <= 1000, name, value,
                   "metres, at least one cell and at most 1000")
        _check(0 < self.min_share <= 1, "min_share", self.min_share, "a share in (0, 1]")
        _check(self.cells_x * self.cells_y <= 4_000_000, "resolution", self.resolution,
               "at most 4 million cells in range x width")

    @property
    def cells_x(self) -> int:
        """Cells along x (forward): the OccupancyGrid's width."""
        return int(round(self.range / self.resolution))

    @property
    def cells_y(self) -> int:
        """Cells along y (across): the OccupancyGrid's height."""
        return int(round(self.width / self.resolution))

    @property
    def origin(self) -> tuple[float, float]:
        """Grid-frame (x, y) of the corner of cell (0, 0), metres."""
        return 0.0, -self.cells_y * self.resolution / 2


def scaled_intrinsics(k: np.ndarray, info_size: tuple[int, int],
                      image_size: tuple[int, int]) -> np.ndarray:
    """Return the 3x3 ``k`` of a ``(width, height)`` camera_info rescaled to ``image_size``."""
    sx, sy = image_size[0] / info_size[0], image_size[1] / info_size[1]
    return np.diag([sx, sy, 1.0]) @ np.asarray(k, np.float64).reshape(3, 3)


def ground_points(k: np.ndarray, pose: np.ndarray, width: int, height: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the ground ``z = 0``, in the grid frame.

    Args:
        k: 3x3 intrinsics, pixels.
        pose: 4x4 transform from the optical frame to the grid frame.
        width, height: image size, pixels.

    Returns:
        ``(xy (H*W, 2) metres, hits (H*W,) bool)``: ``hits`` is False where the ray points at
        or above the horizon; ``xy`` is meaningless there.

    """
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    _check(fx > 0 and fy > 0, "camera_info", float(min(fx, fy)), "focal lengths K[0], K[4] > 0")
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([(u.ravel() - cx) / fx, (v.ravel() - cy) / fy, np.ones(u.size)], 1)
    rays = rays @ pose[:3, :3].T
    down = rays[:, 2] < -1e-9
    depth = np.where(down, -pose[2, 3] / np.where(down, rays[:, 2], -1.0), 0.0)
    return pose[:2, 3] + rays[:, :2] * depth[:, None], down


class GroundProjection:
    """The pixel-to-cell map of one camera geometry, and the per-frame cost grid.

    Args:
        k: 3x3 intrinsics for the mask's size, pixels.
        pose: 4x4 transform from the camera's optical frame to the grid frame
            (:meth:`CameraPose.matrix`, or a TF lookup).
        image_size: mask ``(width, height)``, pixels.
        grid: the grid's extent and cell rule.

    """

    def __init__(self, k: np.ndarray, pose: np.ndarray, image_size: tuple[int, int],
                 grid: GridSpec) -> None:
        self.grid = grid
        self.image_size = image_size
        width, height = image_size
        xy, hits = ground_points(np.asarray(k, np.float64), pose, width, height)
        ox, oy = grid.origin
        col = np.floor((xy[:, 0] - ox) / grid.resolution)
        row = np.floor((xy[:, 1] - oy) / grid.resolution)
        inside = hits & (col >= 0) & (col < grid.cells_x) & (row >= 0) & (row < grid.cells_y)
        pixels = np.flatnonzero(inside)
        cells = (row[inside] * grid.cells_x + col[inside]).astype(np.int64)
        pixels, cells = _sample_per_cell(pixels, cells, PIXELS_PER_CELL)
        self.pixels = pixels.astype(np.intp)
        # Frames are binned over the reached cells only (numbered 0..R-1), not the whole grid.
        self.reached, self.slot = np.unique(cells, return_inverse=True)
        self.slot = self.slot.astype(np.intp).ravel()
        # Pixels a class needs in each reached cell to count there: the cell's sampled pixels
        # do not change with the frame, so neither does the threshold.
        self.need = grid.min_share * np.bincount(self.slot, minlength=self.reached.size)
        self._bins: tuple[bytes, np.ndarray, np.ndarray] | None = None

    @property
    def empty(self) -> bool:
        """True when no pixel of the camera reaches the grid (e.g. it looks above the horizon)."""
        return self.pixels.size == 0

    def costs(self, class_ids: np.ndarray, class_costs: np.ndarray) -> np.ndarray:
        """Return the ``(cells_y, cells_x)`` int8 cost grid of one mask.

        Args:
            class_ids: ``(H, W)`` uint8 class ids of the projection's image size.
            class_costs: cost per class id (0..100, or -1 unknown); ids beyond it (the
                ignore index) count as unknown.

        """
        if class_ids.shape != self.image_size[::-1]:
            raise ValueError(f"mask of {class_ids.shape[1]}x{class_ids.shape[0]} px does not "
                             f"match the projection's {self.image_size[0]}x"
                             f"{self.image_size[1]}")
        levels, first_bin = self._bins_for(np.asarray(class_costs, np.int16))
        counts = np.bincount(first_bin[class_ids.ravel()[self.pixels]] + self.slot,
                             minlength=self.reached.size * len(levels))
        # One row per cost level: the cell rule reduces over rows, element by element.
        counting = counts.reshape(len(levels), self.reached.size) >= self.need
        grid = np.full(self.grid.cells_x * self.grid.cells_y, UNKNOWN, np.int8)
        grid[self.reached] = np.where(counting, levels[:, None], UNKNOWN).max(0)
        return grid.reshape(self.grid.cells_y, self.grid.cells_x)

    def _bins_for(self, class_costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (ascending cost levels, class id -> first bin of its level), cached per table.

        Only the distinct costs matter to the cell rule, so frames are binned by cost level,
        not by class: a pixel's bin is its level times the reached-cell count plus its cell's
        slot.
        """
        key = class_costs.tobytes()
        if self._bins is None or self._bins[0] != key:
            lut = np.full(256, UNKNOWN, np.int16)
            lut[: len(class_costs)] = class_costs
            levels, level_of_id = np.unique(lut, return_inverse=True)
            self._bins = key, levels, level_of_id.astype(np.intp).ravel() * self.reached.size
        return self._bins[1], self._bins[2]


def _sample_per_cell(pixels: np.ndarray, cells: np.ndarray, cap: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``cap`` pixels per cell, evenly spread over each cell's pixels."""
    order = np.argsort(cells, kind="stable")
    pixels, cells = pixels[order], cells[order]
    if cells.size == 0:
        return pixels, cells
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    sizes = np.diff(np.r_[starts, cells.size])
    rank = np.arange(cells.size) - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    keep = (rank * cap) // size != ((rank - 1) * cap) // size
    keep[starts] = True
    return pixels[keep], cells[keep]


def grid_settings(values: Mapping[str, Any]) -> tuple[GridSpec, CameraPose]:
    """Return the grid and the camera pose of ``traversability.*`` parameter values.

    The node's parameters and the parameters file ``dice-seg eval --traversability`` reads use
    the same names (``config/segmentation.yaml``); missing ones take the grid's defaults.
    """
    def get(name: str, default: float) -> float:
        return float(values.get(f"traversability.{name}", default))

    spec = GridSpec(get("resolution", GridSpec.resolution), get("range", GridSpec.range),
                    get("width", GridSpec.width), get("min_share", GridSpec.min_share))
    pose = CameraPose(get("camera_height", 1.0), get("camera_pitch", 0.0),
                      get("camera_x", 0.0), get("camera_y", 0.0), get("camera_roll", 0.0),
                      get("camera_yaw", 0.0))
    return spec, pose


class CameraGrid:
    """Cost grids of one camera, its projection rebuilt only when the geometry changes.

    Args:
        spec: the grid's extent and cell rule.
        class_costs: cost per class id (``ClassSet.cost_table()``).

    """

    def __init__(self, spec: GridSpec, class_costs: np.ndarray) -> None:
        self.spec = spec
        self.class_costs = np.asarray(class_costs, np.int16)
        self._key: tuple | None = None
        self._projection: GroundProjection | None = None

    def costs(self, class_ids: np.ndarray, k: np.ndarray, info_size: tuple[int, int],
              pose: np.ndarray) -> np.ndarray:
        """Return the int8 ``(cells_y, cells_x)`` grid of a mask.

        Args:
            class_ids: ``(H, W)`` uint8 mask.
            k: 3x3 intrinsics of the camera_info, pixels.
            info_size: the camera_info's ``(width, height)``, pixels (the mask may be binned).
            pose: 4x4 optical-frame-to-grid-frame transform.

        """
        size = (class_ids.shape[1], class_ids.shape[0])
        k = np.asarray(k, np.float64).reshape(3, 3)
        key = (k.tobytes(), info_size, size, np.asarray(pose, np.float64).tobytes())
        if key != self._key:
            self._projection = GroundProjection(scaled_intrinsics(k, info_size, size), pose,
                                                size, self.spec)
            self._key = key
        return self._projection.costs(class_ids, self.class_costs)


def fuse(grids: list[np.ndarray]) -> np.ndarray:
    """Fuse cost grids of several cameras on the same grid: the worst known cost per cell."""
    return np.maximum.reduce(grids) if grids else np.empty((0, 0), np.int8)
