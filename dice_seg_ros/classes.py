"""Terrain class definitions: names, RGB colours and id remapping.

Read from ``config/classes.yaml`` so that training, the nodes, reports and RViz
colouring agree on what each class id means.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from dice_seg_ros.resources import DEFAULT_CLASSES, resource_path

DEFAULT_IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassSet:
    """An ordered list of classes; class id ``i`` is ``names[i]``.

    Attributes:
        names: class names, index = class id.
        colors: ``(C, 3)`` uint8 RGB colour per class id.
        drivable: whether each class id is drivable terrain.
        ignore_index: label value that marks unlabeled pixels (not a class).
        costs: traversal cost per class id for ground grids, as ``nav_msgs/OccupancyGrid``
            reads it: 0 free .. 100 lethal, -1 unknown (e.g. sky). None: 0 for drivable
            classes, 100 for the others.

    """

    names: tuple[str, ...]
    colors: np.ndarray
    drivable: tuple[bool, ...]
    ignore_index: int = DEFAULT_IGNORE_INDEX
    costs: tuple[int, ...] | None = None

    def cost_table(self) -> np.ndarray:
        """Return the ``(C,)`` int16 traversal cost per class id (see ``costs``)."""
        if self.costs is not None:
            return np.asarray(self.costs, np.int16)
        return np.where(np.asarray(self.drivable, bool), 0, 100).astype(np.int16)

    def with_costs(self, costs: Sequence[int | None]) -> ClassSet:
        """Return a copy whose class ``i`` costs ``costs[i]`` where that is not None."""
        if not any(cost is not None for cost in costs):
            return self
        if len(costs) != self.num_classes:
            raise ValueError(f"{len(costs)} costs for {self.num_classes} classes")
        own = self.cost_table()
        return replace(self, costs=tuple(int(own[i]) if cost is None else int(cost)
                                         for i, cost in enumerate(costs)))

    @property
    def num_classes(self) -> int:
        """Number of classes C (ids 0..C-1)."""
        return len(self.names)

    def palette(self) -> np.ndarray:
        """Return a ``(256, 3)`` uint8 lookup table: id -> RGB, unknown ids black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = self.colors
        return lut

    def index(self, name: str) -> int:
        """Return the class id of ``name``; raise ValueError for an unknown name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown class {name!r}; known classes: {list(self.names)}") from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; ValueError of one line naming the file and where it is malformed."""
    with open(path, encoding="utf-8") as stream:
        try:
            return yaml.safe_load(stream)
        except yaml.YAMLError as exc:
            # PyYAML's message spans several lines with a caret drawing; keep one.
            raise ValueError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None


def load_classes(path: str | Path | None = None) -> ClassSet:
    """Read a classes YAML file (default: the shipped ``config/classes.yaml``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if an entry is not a mapping with a name, ids are not 0..C-1 in
            order, colours are not RGB triples in 0..255, names repeat, or the
            ignore index is a class id or above 255.

    """
    path = Path(path) if path is not None else resource_path(DEFAULT_CLASSES)
    if not path.is_file():
        raise FileNotFoundError(f"classes file not found: {path}")
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise ValueError(f"{path}: expected a mapping with a 'classes' list")
    entries = doc["classes"]
    if not entries:
        raise ValueError(f"{path}: 'classes' is empty")
    names, colors, drivable, costs = [], [], [], []
    for expected_id, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(
                f"{path}: class entry {expected_id} must be a mapping with id, name and "
                f"color, got {entry!r}")
        if entry.get("id") != expected_id:
            raise ValueError(
                f"{path}: class ids must be 0..C-1 in order; entry {expected_id} "
                f"has id {entry.get('id')!r}")
        color = entry.get("color")
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise ValueError(
                f"{path}: class {entry.get('name')!r} color must be [R, G, B] in "
                f"0..255, got {color!r}")
        names.append(str(entry["name"]))
        colors.append(color)
        drivable.append(bool(entry.get("drivable", False)))
        cost = entry.get("cost", 0 if drivable[-1] else 100)
        if not isinstance(cost, int) or not -1 <= cost <= 100:
            raise ValueError(f"{path}: class {entry.get('name')!r} cost must be an integer "
                             f"from -1 (unknown) to 100 (lethal), got {cost!r}")
        costs.append(cost)
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: class names repeat: {names}")
    ignore_index = int(doc.get("ignore_index", DEFAULT_IGNORE_INDEX))
    if ignore_index < len(names):
        raise ValueError(
            f"{path}: ignore_index {ignore_index} collides with a class id "
            f"(0..{len(names) - 1})")
    if ignore_index > 255:
        raise ValueError(f"{path}: ignore_index {ignore_index} does not fit 8-bit labels "
                         f"(at most 255)")
    return ClassSet(tuple(names), np.asarray(colors, dtype=np.uint8),
                    tuple(drivable), ignore_index, tuple(costs))


def load_remap(path: str | Path) -> dict[int, int]:
    """Read a remapping YAML ``{source_id: target_id}`` (target may be 255 = ignore).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if a key or value is not an integer in 0..255.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"remap file not found: {path}")
    doc = read_yaml(path) or {}
    mapping = doc.get("remap", doc) if isinstance(doc, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: expected a mapping of source id -> target id")
    out = {}
    for src, dst in mapping.items():
        if not (isinstance(src, int) and isinstance(dst, int)
                and 0 <= src <= 255 and 0 <= dst <= 255):
            raise ValueError(f"{path}: remap entry {src!r}: {dst!r} is not two ids in 0..255")
        out[src] = dst
    return out


def remap_lut(mapping: dict[int, int], default: int = DEFAULT_IGNORE_INDEX) -> np.ndarray:
    """Return a 256-entry uint8 lookup table applying ``mapping``; others -> ``default``."""
    lut = np.full(256, default, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def generated_colors(count: int) -> np.ndarray:
    """Return ``(count, 3)`` uint8 RGB colours evenly spaced in hue (for unnamed palettes)."""
    import cv2

    hues = (np.arange(count) * 180 // max(count, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 230, np.uint8)], -1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def classes_for_model(model_names: tuple[str, ...] | list[str],
                      classes_file: str | Path | None = None,
                      costs: Sequence[int | None] = ()) -> ClassSet:
    """Return the ClassSet of a model: its own class names, with colours from a classes file.

    The model's class list (its metadata) is the one source of truth. A given
    ``classes_file`` supplies the colours and must list the same names in the
    same order. Without one, the shipped ``config/classes.yaml`` is used when
    its names match, else colours are generated for the model's names. ``costs`` (a
    sidecar's, ``Segmenter.class_costs``) replace the traversability cost of each class where
    not None; a class of unknown name without one costs -1 (unknown).

    Raises:
        ModelError: ``classes_file`` lists other classes than the model (naming both).
        FileNotFoundError, ValueError: ``classes_file`` is missing or malformed.

    """
    from dice_seg_ros.errors import ModelError

    names = tuple(model_names)
    if classes_file:
        classes = load_classes(classes_file)
        if classes.names != names:
            raise ModelError(
                f"classes file {classes_file} lists {list(classes.names)} but the model has "
                f"{len(names)} classes {list(names)}; give a file with the model's classes "
                f"or none")
        return classes.with_costs(costs)
    shipped = load_classes()
    if shipped.names == names:
        return shipped.with_costs(costs)
    # Classes this project does not know have no known cost: a planner sees unknown ground.
    return ClassSet(names, generated_colors(len(names)), (False,) * len(names),
                    DEFAULT_IGNORE_INDEX, (-1,) * len(names)).with_costs(costs)
