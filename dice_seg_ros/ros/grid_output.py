"""The traversability grid of the segmentation node, without rclpy: pose source, status, message.

The geometry and the cell rule are :mod:`dice_seg_ros.runtime.traversability`, which
``dice-seg eval`` calls too; this module adds what the node needs around it: where the camera
pose comes from (TF when it answers, else the ``traversability.camera_*`` parameters), what
``/diagnostics`` says, and the ``nav_msgs/OccupancyGrid`` message.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable

import numpy as np

from dice_seg_ros.errors import DiceSegError
from dice_seg_ros.runtime.pairing import header_stamp_ns
from dice_seg_ros.runtime.traversability import CameraGrid, GridSpec, fuse

# (camera frame_id, header stamp) -> 4x4 optical-to-grid transform, or None when unknown.
PoseLookup = Callable[[str, Any], "np.ndarray | None"]
# A camera's grid older than this, against the newest grid of any camera, leaves the fused
# grid: a camera that stopped must not keep its last view in the plan.
FUSE_MAX_AGE_S = 1.0


class GridOutput:
    """One camera's grid: the cost grid of each mask, and where its pose came from.

    Args:
        grid: the camera's projection cache and class costs.
        fallback_pose: 4x4 transform from the ``traversability.camera_*`` parameters.
        lookup: TF lookup, or None where tf2_ros is not installed or ``use_tf`` is off.

    """

    def __init__(self, grid: CameraGrid, fallback_pose: np.ndarray,
                 lookup: PoseLookup | None = None) -> None:
        self.grid = grid
        self.fallback_pose = fallback_pose
        self.lookup = lookup
        self.state = "waiting for the first frame"
        self.ok = True
        self.last: np.ndarray | None = None

    def costs(self, class_ids: np.ndarray, header: Any, camera_info: Any) -> np.ndarray | None:
        """Return the cost grid of a mask, or None (state says why) without usable camera_info.

        Args:
            class_ids: the ``(H, W)`` uint8 mask.
            header: the camera frame's header (its frame_id is the optical frame).
            camera_info: the camera's newest ``sensor_msgs/CameraInfo``, or None.

        """
        if camera_info is None:
            return self._fail("no camera_info received: intrinsics unknown, no grid")
        pose = self.lookup(header.frame_id, header.stamp) if self.lookup else None
        source = f"tf ({header.frame_id})" if pose is not None else "parameters"
        try:
            self.last = self.grid.costs(class_ids, np.asarray(camera_info.k),
                                        (camera_info.width, camera_info.height),
                                        self.fallback_pose if pose is None else pose)
        except (DiceSegError, ValueError) as exc:
            return self._fail(f"camera_info unusable: {exc}")
        self.state, self.ok = f"camera pose from {source}", True
        return self.last

    def _fail(self, why: str) -> None:
        """Record why no grid was made (reported in /diagnostics)."""
        self.state, self.ok = why, False
        return None

    def status_values(self) -> dict[str, str]:
        """Return the /diagnostics key-values of the grid."""
        values = {"traversability": self.state}
        if self.last is not None:
            known = self.last >= 0
            values["traversability_known_cells"] = str(int(known.sum()))
            values["traversability_lethal_cells"] = str(int((self.last >= 100).sum()))
        return values


class GridFusion:
    """The fused grid of several cameras: each camera's newest grid, worst known cost per cell.

    Args:
        max_age_s: grids whose stamp is older than the newest grid's by more than this,
            seconds, are left out.

    """

    def __init__(self, max_age_s: float = FUSE_MAX_AGE_S) -> None:
        self.max_age_ns = int(max_age_s * 1e9)
        self.latest: dict[str, tuple[int, np.ndarray]] = {}

    def add(self, camera: str, header: Any, costs: np.ndarray) -> np.ndarray:
        """Keep ``camera``'s grid of the frame stamped ``header``; return the fused grid."""
        self.latest[camera] = header_stamp_ns(header), costs
        newest = max(stamp for stamp, _ in self.latest.values())
        return fuse([grid for stamp, grid in self.latest.values()
                     if newest - stamp <= self.max_age_ns])


def occupancy_grid(costs: np.ndarray, spec: GridSpec, header: Any, frame: str,
                   grid_cls: type) -> Any:
    """Build a ``nav_msgs/OccupancyGrid`` of ``costs`` stamped like the camera frame.

    Args:
        costs: int8 ``(cells_y, cells_x)`` grid, row-major from the origin cell.
        spec: the grid's resolution and extent (origin at its cell (0, 0) corner).
        header: the camera frame's header; its stamp is kept.
        frame: the grid's frame_id.
        grid_cls: the OccupancyGrid class (rclpy's).

    """
    msg = grid_cls()
    msg.header.stamp = header.stamp
    msg.header.frame_id = frame
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(spec.resolution)
    msg.info.width, msg.info.height = spec.cells_x, spec.cells_y
    msg.info.origin.position.x, msg.info.origin.position.y = spec.origin
    msg.info.origin.orientation.w = 1.0
    # rclpy takes an int8 sequence as array('b') without converting element by element.
    msg.data = array("b", costs.astype(np.int8, copy=False).tobytes())
    return msg


def quaternion_matrix(translation: tuple[float, float, float],
                      rotation: tuple[float, float, float, float]) -> np.ndarray:
    """Return the 4x4 transform of a translation (m) and a unit quaternion (x, y, z, w)."""
    x, y, z, w = rotation
    matrix = np.eye(4)
    matrix[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    matrix[:3, 3] = translation
    return matrix
