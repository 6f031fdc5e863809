"""The traversability grid in ``dice-seg eval``: written into the output bag, scored on labels.

``dice-seg eval --traversability PARAMS_YAML`` reads the ``traversability.*`` values of a node
parameters file (``config/segmentation.yaml``), takes the intrinsics from the first
``camera_info`` beside the image topic (``/camera/image_raw`` -> ``/camera/camera_info``) and
projects each predicted mask with :mod:`dice_seg_ros.runtime.traversability`, the code the node
runs. The grid goes into the output bag as ``nav_msgs/msg/OccupancyGrid`` on the node's topic
(``/camera/dice_seg/traversability``), stamped like its image. The label mask projected the same
way is the ground-truth grid: report.json ``traversability`` gives Dice and IoU over its known
cells, a cell being *free* (cost 0..99) or *lethal* (cost 100); a predicted unknown cell where
the truth is known counts as a miss. The camera pose always comes from the parameters (TF in the
bag is not read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from dice_seg_ros.bags.bag_io import BagReader, BagWriter, BadMessage, make_header, msg_class
from dice_seg_ros.bags.bag_io import CAMERA_INFO_TYPE
from dice_seg_ros.classes import ClassSet
from dice_seg_ros.errors import BagError, DiceSegError
from dice_seg_ros.runtime import outputs
from dice_seg_ros.runtime.metrics import ConfusionMatrix, nanmean
from dice_seg_ros.runtime.outputs import camera_namespace, output_topic
from dice_seg_ros.runtime.pairing import header_stamp_ns
from dice_seg_ros.runtime.traversability import LETHAL, CameraGrid, grid_settings

GRID_TYPE = "nav_msgs/msg/OccupancyGrid"
PREFIX = "traversability."
# The node's traversability.* parameters (dice_seg_ros/ros/node_params.py); eval reads them all
# so that one file serves both, and names any other as a typo.
PARAM_NAMES = frozenset(PREFIX + name for name in (
    "enabled", "frame", "use_tf", "resolution", "range", "width", "min_share", "camera_height",
    "camera_pitch", "camera_roll", "camera_yaw", "camera_x", "camera_y"))
# Grid cells scored against the labels' grid: 0 free, 1 lethal, 2 unknown (predicted only).
CELL_CLASSES = ("free", "lethal")
UNSCORED = 255


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return nested parameter mappings as ROS's dotted names (``a: {b: 1}`` -> ``a.b``)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_grid_params(path: str | Path) -> dict[str, Any]:
    """Return the ``traversability.*`` values of a ROS 2 parameters file.

    Every ``<node>: ros__parameters:`` section is read; a later section's value replaces an
    earlier one's.

    Raises:
        DiceSegError: naming the file when it is missing, not YAML, has no
            ``ros__parameters`` section, or names an unknown ``traversability.*`` parameter.

    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DiceSegError(f"--traversability {path}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    sections = [node["ros__parameters"] for node in (data or {}).values()
                if isinstance(data, dict) and isinstance(node, dict)
                and isinstance(node.get("ros__parameters"), dict)]
    if not sections:
        raise DiceSegError(f"--traversability {path}: no '<node>: ros__parameters:' section "
                           f"(see config/segmentation.yaml)")
    values: dict[str, Any] = {}
    for section in sections:
        values.update((name, value) for name, value in _flatten(section).items()
                      if name.startswith(PREFIX))
    unknown = sorted(set(values) - PARAM_NAMES)
    if unknown:
        raise DiceSegError(f"--traversability {path}: unknown parameter(s) {', '.join(unknown)}"
                           f"; known: {', '.join(sorted(PARAM_NAMES))}")
    return values


def camera_info_topic(image_topic: str) -> str:
    """Return the camera_info topic beside an image topic, as image_transport pairs them."""
    return f"{camera_namespace(image_topic)}/camera_info"


def first_camera_info(bag: str | Path, topic: str) -> Any:
    """Return the first ``sensor_msgs/msg/CameraInfo`` on ``topic`` of a bag.

    Raises:
        BagError: the topic is missing, of another type, or holds no readable message.

    """
    with BagReader(bag) as reader:
        try:
            reader.check_topic(topic, (CAMERA_INFO_TYPE,))
        except BagError as exc:
            raise BagError(f"--traversability needs the camera intrinsics: {exc}") from None
        for message in reader.messages([topic]):
            if not isinstance(message, BadMessage):
                return message.msg
    raise BagError(f"--traversability: no readable camera_info on {topic} in {bag}")


def occupancy_grid(costs: np.ndarray, grid: CameraGrid, stamp_ns: int, frame: str) -> Any:
    """Build the ``nav_msgs/msg/OccupancyGrid`` bag message of an int8 (cells_y, cells_x) grid.

    The origin is the corner of cell (0, 0), unrotated, so RViz draws it in ``frame``.
    """
    spec = grid.spec
    header = make_header(stamp_ns, frame)
    point = msg_class("geometry_msgs/msg/Point")(x=spec.origin[0], y=spec.origin[1], z=0.0)
    quaternion = msg_class("geometry_msgs/msg/Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0)
    info = msg_class("nav_msgs/msg/MapMetaData")(
        map_load_time=header.stamp, resolution=float(spec.resolution), width=spec.cells_x,
        height=spec.cells_y,
        origin=msg_class("geometry_msgs/msg/Pose")(position=point, orientation=quaternion))
    return msg_class(GRID_TYPE)(header=header, info=info,
                                data=np.ascontiguousarray(costs, np.int8).ravel())


def cell_classes(costs: np.ndarray, unknown: int) -> np.ndarray:
    """Return uint8 cell classes of a cost grid: 0 free (0..99), 1 lethal (100), else unknown."""
    cells = np.full(costs.shape, unknown, np.uint8)
    cells[(costs >= 0) & (costs < LETHAL)] = 0
    cells[costs >= LETHAL] = 1
    return cells


class GridEval:
    """Grids of the predicted and the label masks of one camera, written and scored.

    Args:
        params_file: the node parameters file (``traversability.*`` values).
        bag: the bag being evaluated (its first camera_info gives the intrinsics).
        image_topic: the camera's image topic.
        classes: the model's classes, with their costs.
        writer: the output bag, or None without one.

    Raises:
        DiceSegError: a bad parameters file or value, or no camera_info in the bag.

    """

    def __init__(self, params_file: str | Path, bag: str | Path, image_topic: str,
                 classes: ClassSet, writer: BagWriter | None) -> None:
        values = read_grid_params(params_file)
        try:
            spec, pose = grid_settings(values)
        except (DiceSegError, ValueError, TypeError) as exc:
            raise DiceSegError(f"--traversability {params_file}: {exc}") from None
        self.params_file = str(params_file)
        self.frame = str(values.get(PREFIX + "frame", "base_link"))
        self.pose = pose.matrix()
        self.grid = CameraGrid(spec, classes.cost_table())
        info = first_camera_info(bag, camera_info_topic(image_topic))
        self.k = np.asarray(info.k, np.float64)
        self.info_size = (int(info.width), int(info.height))
        self.topic = output_topic(image_topic, outputs.TRAVERSABILITY)
        self.writer = writer
        if writer is not None:
            writer.add_topic(self.topic, GRID_TYPE)
        # Rows: label grid cell (free, lethal), columns: predicted (free, lethal, unknown).
        self.cells = ConfusionMatrix(len(CELL_CLASSES) + 1, ignore_index=UNSCORED)
        self.frames = 0

    def costs(self, class_ids: np.ndarray) -> np.ndarray:
        """Return the int8 cost grid of a camera-size mask (predicted or label)."""
        return self.grid.costs(class_ids, self.k, self.info_size, self.pose)

    def add(self, header: Any, log_time_ns: int, class_ids: np.ndarray,
            labels: np.ndarray | None) -> None:
        """Write a frame's grid at its image's log time; score it when it has labels."""
        costs = self.costs(class_ids)
        if self.writer is not None:
            self.writer.write(self.topic, log_time_ns,
                              occupancy_grid(costs, self.grid, header_stamp_ns(header),
                                             self.frame))
        if labels is not None:
            self.cells.update(cell_classes(costs, len(CELL_CLASSES)),
                              cell_classes(self.costs(labels), UNSCORED))
            self.frames += 1

    def report(self) -> dict[str, Any]:
        """Return report.json ``traversability``: grid topic, geometry, Dice/IoU on cells."""
        dice, iou = self.cells.dice()[:2], self.cells.iou()[:2]
        scored = self.cells.matrix[:2]
        return {
            "params_file": self.params_file,
            "topic": self.topic if self.writer is not None else None,
            "frame": self.frame,
            "pose_source": "parameters",
            "resolution_m": self.grid.spec.resolution,
            "frames_scored": self.frames,
            "cells_scored": int(scored.sum()),
            "cells_predicted_unknown": int(scored[:, 2].sum()),
            "dice": {name: _number(v) for name, v in zip(CELL_CLASSES, dice)},
            "iou": {name: _number(v) for name, v in zip(CELL_CLASSES, iou)},
            "mean_dice": _number(nanmean(dice)),
            "mean_iou": _number(nanmean(iou)),
        }


def _number(value: float) -> float | None:
    """Return a float for JSON, None for NaN (a cell class absent from both grids)."""
    return None if np.isnan(value) else float(value)


def summary_line(report: Mapping[str, Any]) -> str | None:
    """Return the CLI summary line of report.json ``traversability``, or None without one."""
    grid = report.get("traversability")
    if not grid:
        return None

    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    if not grid["frames_scored"]:
        return f"traversability grid: {grid['topic'] or 'not written'}; no label scored it"
    return (f"traversability grid ({grid['frames_scored']} frames, {grid['cells_scored']} "
            f"cells known in the labels' grid): Dice free {score(grid['dice']['free'])}, "
            f"lethal {score(grid['dice']['lethal'])}, mean {score(grid['mean_dice'])}; "
            f"mean IoU {score(grid['mean_iou'])}")
