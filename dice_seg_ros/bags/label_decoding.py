"""Label messages of another ontology -> this project's class ids, for ``dice-seg eval``.

A labeled bag may come from another dataset: ids of its own class list (RELLIS),
or colours of its own palette (RUGD). A :class:`LabelDecoder` reads such
labels without converting the bag first:

- ``ids`` labels: pixel = class id; with a remap file, pixel = source id,
  mapped through ``classes.load_remap`` (unlisted source ids -> ignore).
- ``color`` labels: pixel colour = a class colour (``config/classes.yaml``),
  or with ``--colormap FILE`` a colour of another palette, given as a CSV
  ``id,name,r,g,b`` (one row per source class, header line required); black is
  void unless the colour map lists it. With a remap file the colour map's ids
  are source ids; without, they must be this project's class ids.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dice_seg_ros.classes import ClassSet, load_remap, remap_lut
from dice_seg_ros.runtime.image_conversion import (check_label_format, label_id_pixels,
                                                   labels_to_ids)

COLORMAP_COLUMNS = ("id", "name", "r", "g", "b")


def load_colormap(path: str | Path) -> tuple[np.ndarray, ClassSet]:
    """Read a colour map CSV ``id,name,r,g,b``; return source ids and a ClassSet of rows.

    Row ``i`` of the ClassSet is the colour of source id ``ids[i]``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file and line of a missing column, an id or
            colour outside 0..255, or an id or colour listed twice.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"colour map not found: {path}")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or not set(COLORMAP_COLUMNS) <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a header line {','.join(COLORMAP_COLUMNS)}, "
                             f"got {reader.fieldnames}")
        ids, names, colors = [], [], []
        for row in reader:
            try:
                values = [int(row[key]) for key in ("id", "r", "g", "b")]
            except (TypeError, ValueError):
                raise ValueError(f"{path} line {reader.line_num}: id, r, g, b must be "
                                 f"integers, got {row}") from None
            if not all(0 <= v <= 255 for v in values):
                raise ValueError(f"{path} line {reader.line_num}: id and r, g, b must be in "
                                 f"0..255, got {values}")
            ids.append(values[0])
            names.append(str(row["name"]))
            colors.append(values[1:])
    if not ids or len(ids) > 255:
        raise ValueError(f"{path}: needs 1..255 classes, has {len(ids)}")
    if len(set(ids)) != len(ids) or len({tuple(c) for c in colors}) != len(colors):
        raise ValueError(f"{path}: an id or a colour is listed twice")
    return (np.asarray(ids, dtype=np.uint8),
            ClassSet(tuple(f"{i}:{n}" for i, n in zip(ids, names)),
                     np.asarray(colors, dtype=np.uint8), (False,) * len(ids), 255))


def _check_targets(lut: np.ndarray, classes: ClassSet, source: str) -> None:
    """Raise ValueError if ``lut`` maps onto a value that is neither a class id nor ignore."""
    bad = sorted({int(v) for v in lut if v >= classes.num_classes and v != classes.ignore_index})
    if bad:
        raise ValueError(f"{source} maps onto ids {bad}, which are neither class ids "
                         f"0..{classes.num_classes - 1} nor ignore {classes.ignore_index}")


@dataclass(frozen=True)
class LabelDecoder:
    """Turn label messages into ``(H, W)`` uint8 class ids of ``classes``.

    Build it with :meth:`build`; call it on a label Image/CompressedImage.
    ``lut`` (256 entries) maps source ids (or colour-map rows) to class ids.
    """

    classes: ClassSet
    label_format: str
    palette: ClassSet | None = None
    lut: np.ndarray | None = None

    @classmethod
    def build(cls, classes: ClassSet, label_format: str = "ids",
              remap: str | Path | None = None,
              colormap: str | Path | None = None) -> "LabelDecoder":
        """Validate the options and build the decoder.

        Raises:
            ValueError: an unknown format, ``colormap`` without colour labels,
                or a remap/colour map onto ids that are not classes (or ignore).
            FileNotFoundError: a remap or colour map file that does not exist.

        """
        check_label_format(label_format)
        if colormap is not None and label_format != "color":
            raise ValueError(f"a colour map ({colormap}) needs label format 'color', "
                             f"got {label_format!r}")
        lut = remap_lut(load_remap(remap), classes.ignore_index) if remap else None
        palette = None
        if colormap is not None:
            source_ids, palette = load_colormap(colormap)
            rows = np.full(256, classes.ignore_index, dtype=np.uint8)
            rows[: len(source_ids)] = source_ids if lut is None else lut[source_ids]
            lut, remap = rows, remap or colormap
        if lut is not None:
            _check_targets(lut, classes, str(remap))
        return cls(classes, label_format, palette, lut)

    def __call__(self, msg: Any) -> np.ndarray:
        """Return the class ids of a label message.

        Raises:
            ImageEncodingError: an encoding that does not fit the label format.
            ValueError: ids or colours that are not in the class list / colour map
                (the message names them), or a 16-bit source id above 255.

        """
        if self.lut is None:
            return labels_to_ids(msg, self.label_format, self.classes)
        if self.label_format == "color":
            rows = labels_to_ids(msg, "color", self.palette or self.classes)
            return self.lut[rows]
        ids = label_id_pixels(msg)
        if ids.size and int(ids.max()) > 255:
            raise ValueError(f"label ids above 255 cannot be remapped: {int(ids.max())}")
        return self.lut[ids]
