"""CVAT's "Segmentation mask 1.1" export (Pascal VOC style) as labeled images.

An export holds ``labelmap.txt`` (``name:r,g,b::`` per label, ``#`` comments),
``SegmentationClass/NAME.png`` (one colour per label; a mask saved as one grey channel holds
the label's labelmap index instead), ``ImageSets/Segmentation/default.txt``
(the frame names) and, when images were saved with it, ``JPEGImages/NAME.jpg``; otherwise the
images come from another folder (``--images``). Label names map onto the project's classes by
name (case does not matter) or through a remap YAML ``{label name or labelmap index: class name
or id}``; labels that map to no class (CVAT's ``background``, say) become the ignore index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dice_seg_ros.classes import ClassSet, read_yaml
from dice_seg_ros.errors import DiceSegError

CVAT_LAYOUT = ("ROOT/labelmap.txt + ROOT/SegmentationClass/NAME.png + "
               "ROOT/ImageSets/Segmentation/default.txt + ROOT/JPEGImages/NAME.jpg (or --images)")
FRAME_LIST = Path("ImageSets") / "Segmentation" / "default.txt"


class CvatError(DiceSegError, ValueError):
    """A CVAT export is incomplete or does not match the project's classes."""


def read_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """Return ``(name, (r, g, b))`` per label of a ``labelmap.txt``, in file order.

    Raises:
        CvatError: naming the file and line of a malformed entry or a repeated colour.

    """
    if not path.is_file():
        raise CvatError(f"{path}: no labelmap.txt (expected layout: {CVAT_LAYOUT})")
    labels = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            rgb = tuple(int(c) for c in rest.split(":")[0].split(","))
        except ValueError:
            rgb = ()
        if not name or len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise CvatError(f"{path}:{number}: expected 'name:r,g,b::', got {line!r}")
        labels.append((name, rgb))
    colours = [rgb for _, rgb in labels]
    repeated = {rgb for rgb in colours if colours.count(rgb) > 1}
    if repeated:
        raise CvatError(f"{path}: colours {sorted(repeated)} stand for more than one label")
    if not labels:
        raise CvatError(f"{path}: no labels")
    return labels


def read_name_remap(path: str | Path) -> dict[str | int, str | int]:
    """Read a remap YAML ``{label name or index: class name or id}``; one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise CvatError(f"remap file not found: {path}")
    doc = read_yaml(path) or {}
    mapping = doc.get("remap", doc) if isinstance(doc, dict) else None
    if not isinstance(mapping, dict):
        raise CvatError(f"{path}: expected a mapping {{label name or index: class name or id}}")
    return mapping


def _class_id(value: str | int, classes: ClassSet, where: str) -> int:
    """Return the class id a remap value names (a class name or id, or 'ignore')."""
    if isinstance(value, int) and (0 <= value < classes.num_classes
                                   or value == classes.ignore_index):
        return value
    if isinstance(value, str) and value.lower() == "ignore":
        return classes.ignore_index
    lower = [n.lower() for n in classes.names]
    if isinstance(value, str) and value.lower() in lower:
        return lower.index(value.lower())
    raise CvatError(f"{where}: {value!r} is not a class of {list(classes.names)} (or 'ignore')")


def label_remap(labels: list[tuple[str, tuple[int, int, int]]], classes: ClassSet,
                remap: dict[str | int, str | int] | None = None, source: str = "remap"
                ) -> dict[int, int]:
    """Return labelmap index -> class id: by ``remap`` (name or index), else by name, else ignore.

    Raises:
        CvatError: a remap key that is no label, or a value that is no class.

    """
    names = [name for name, _ in labels]
    explicit: dict[int, int] = {}
    for key, value in (remap or {}).items():
        index = key if isinstance(key, int) else (names.index(key) if key in names else None)
        if index is None or not 0 <= index < len(names):
            raise CvatError(f"{source}: {key!r} is not a label of the export ({names})")
        explicit[index] = _class_id(value, classes, f"{source}: {key!r}")
    lower = [n.lower() for n in classes.names]
    return {i: explicit.get(i, lower.index(name.lower()) if name.lower() in lower
                            else classes.ignore_index)
            for i, name in enumerate(names)}


def frame_names(root: Path) -> list[str]:
    """Return the frame names of the export: ``default.txt`` if present, else every label PNG."""
    listed = root / FRAME_LIST
    if listed.is_file():
        return [line.strip() for line in listed.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    return sorted(p.stem for p in (root / "SegmentationClass").glob("*.png"))


def find_image(folder: Path, name: str, suffixes: tuple[str, ...]) -> Path | None:
    """Return ``folder/NAME.<suffix>`` for the first suffix that exists, or None."""
    for suffix in suffixes:
        for candidate in (folder / f"{name}{suffix}", folder / f"{name}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def cvat_pairs(root: Path, images: Path | None, suffixes: tuple[str, ...]
               ) -> list[tuple[Path, Path]]:
    """Return ``(image, label)`` paths of every frame; errors name the missing file."""
    labels_dir = root / "SegmentationClass"
    if not labels_dir.is_dir():
        raise CvatError(f"{labels_dir}: not found (expected layout: {CVAT_LAYOUT})")
    image_dir = Path(images) if images else root / "JPEGImages"
    if not image_dir.is_dir():
        raise CvatError(f"{image_dir}: no images folder; the export was saved without images, "
                        "so give them with --images DIR")
    pairs = []
    for name in frame_names(root):
        label = labels_dir / f"{name}.png"
        if not label.is_file():
            raise CvatError(f"{label}: frame {name!r} is listed in {FRAME_LIST} but has no "
                            "label PNG (unlabeled frame?)")
        image = find_image(image_dir, name, suffixes)
        if image is None:
            raise CvatError(f"{image_dir}: no image {name}.* for label {label}")
        pairs.append((image, label))
    if not pairs:
        raise CvatError(f"{root}: the export lists no frames")
    return pairs


def labelmap_colors(labels: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """Return the ``(K, 3)`` uint8 colours of the labels, row k = labelmap index k."""
    return np.array([rgb for _, rgb in labels], np.uint8)
