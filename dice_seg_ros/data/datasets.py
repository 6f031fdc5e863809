"""Real labeled image sets on disk: folder, YCOR, RUGD, RELLIS-3D and CVAT layouts.

Every loader yields ``(rgb, class_ids)`` pairs in the project's classes
(``config/classes.yaml``): raw label values (ids, or RGB colours decoded to the
dataset's ids) go through a remap table read from YAML. A raw value that the
remap does not list, or a remapped id outside the class list, is an error
naming the file and the values rather than silently becoming "ignore".

Id labels may be 8-bit grey PNGs, palette PNGs (the palette index is the id, as
YCOR and many tools store them) or three equal channels (ids saved as RGB).

Layouts (``split`` keeps only files whose name starts with ``SPLIT_``):
  * folder: ``ROOT/images/NAME.(png|jpg)`` and ``ROOT/labels/NAME.png``;
    labels are class ids, or RGB colours of a class file (``label_format``).
  * ycor: the folder layout with YCOR ids (``config/remap_ycor.yaml``) and
    ``train_``/``valid_`` name prefixes.
  * rugd: ``ROOT/RUGD_frames-with-annotations/SEQ/NAME.png`` and colour-coded
    ``ROOT/RUGD_annotations/SEQ/NAME.png`` (RUGD's 25-entry colour map), or
    the flat sample layout ``ROOT/images/`` + ``ROOT/annotations/``.
  * rellis: ``ROOT/**/pylon_camera_node/NAME.jpg`` and
    ``ROOT/**/pylon_camera_node_label_id/NAME.png`` (RELLIS-3D ontology ids),
    or the flat sample layout ``ROOT/images/`` + ``ROOT/annotations/``.
  * cvat: CVAT's "Segmentation mask 1.1" export (:mod:`dice_seg_ros.data.cvat`), label names
    mapped onto the project's classes by name or a remap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image

from dice_seg_ros.classes import ClassSet, load_remap, remap_lut
from dice_seg_ros.data.cvat import (CvatError, cvat_pairs, label_remap, labelmap_colors,
                                    read_labelmap, read_name_remap)
from dice_seg_ros.resources import resource_path
from dice_seg_ros.runtime.image_conversion import check_label_format, color_to_ids

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("folder", "ycor", "rugd", "rellis", "cvat")
DEFAULT_REMAPS = {"ycor": "config/remap_ycor.yaml", "rugd": "config/remap_rugd.yaml",
                  "rellis": "config/remap_rellis.yaml"}

# RUGD annotation colour map (RUGD_annotation-colormap.txt): id, name, RGB.
RUGD_CLASSES = (
    ("void", (0, 0, 0)), ("dirt", (108, 64, 20)), ("sand", (255, 229, 204)),
    ("grass", (0, 102, 0)), ("tree", (0, 255, 0)), ("pole", (0, 153, 153)),
    ("water", (0, 128, 255)), ("sky", (0, 0, 255)), ("vehicle", (255, 255, 0)),
    ("container/generic-object", (255, 0, 127)), ("asphalt", (64, 64, 64)),
    ("gravel", (255, 128, 0)), ("building", (255, 0, 0)), ("mulch", (153, 76, 0)),
    ("rock-bed", (102, 102, 0)), ("log", (102, 0, 0)), ("bicycle", (0, 255, 128)),
    ("person", (204, 153, 255)), ("fence", (102, 0, 204)), ("bush", (255, 153, 204)),
    ("sign", (0, 102, 102)), ("rock", (153, 204, 255)), ("bridge", (102, 255, 255)),
    ("concrete", (101, 101, 11)), ("picnic-table", (114, 85, 47)),
)
RUGD_COLORS = np.array([color for _, color in RUGD_CLASSES], np.uint8)
# Marks a colour that is in no colour map; never a valid raw id (maps have < 255 entries).
UNKNOWN_COLOR = 255


@dataclass(frozen=True)
class LabeledImage:
    """One image file and its label file."""

    image: Path
    label: Path


class LabeledImages:
    """Image/label file pairs decoded to ``(rgb (H,W,3) uint8, class_ids (H,W) uint8)``.

    Args:
        pairs: the files, in a fixed order.
        classes: the project's classes (ids 0..C-1 plus ``ignore_index``).
        remap: raw label value -> project id (or ``classes.ignore_index``).
        colors: for colour-coded labels, (K, 3) RGB where row k is raw id k;
            None for id labels.
        grey_is_index: colour-coded labels saved as one grey channel hold the raw id
            itself (CVAT's masks may have 1 or 3 channels).

    Raises:
        ValueError: if ``pairs`` is empty or the remap targets a value that is
            neither a class id nor the ignore index.

    """

    def __init__(self, pairs: Sequence[LabeledImage], classes: ClassSet,
                 remap: dict[int, int], colors: np.ndarray | None = None,
                 source: str = "dataset", grey_is_index: bool = False) -> None:
        if not pairs:
            raise ValueError(f"{source}: no labeled images found")
        bad = sorted(v for v in set(remap.values())
                     if v >= classes.num_classes and v != classes.ignore_index)
        if bad:
            raise ValueError(f"{source}: remap targets {bad} are not class ids "
                             f"0..{classes.num_classes - 1} or ignore {classes.ignore_index}")
        self.pairs = list(pairs)
        self.classes = classes
        self.colors = colors
        self.grey_is_index = grey_is_index
        self.lut = remap_lut(remap, classes.ignore_index)
        self.known = np.zeros(256, bool)
        self.known[list(remap)] = True
        if colors is not None:
            # Decoded colours outside the map are never a valid raw id.
            self.known[UNKNOWN_COLOR] = False

    def __len__(self) -> int:
        """Return the number of labeled images."""
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rgb, class_ids)`` of pair ``index``; errors name the file."""
        pair = self.pairs[index]
        rgb = read_rgb(pair.image)
        raw, from_colours = self._raw_ids(pair.label)
        if raw.shape != rgb.shape[:2]:
            raise ValueError(
                f"{pair.label}: label is {raw.shape[1]}x{raw.shape[0]} pixels but image "
                f"{pair.image} is {rgb.shape[1]}x{rgb.shape[0]}")
        unknown = np.unique(raw[~self.known[raw]])
        if unknown.size and from_colours:
            raise ValueError(f"{pair.label}: label has colours not in the colour map: "
                             f"{unknown_colours(read_rgb(pair.label), raw == UNKNOWN_COLOR)}")
        if unknown.size:
            what = (f"values not in the remap / class list (0..{self.classes.num_classes - 1}"
                    f", ignore {self.classes.ignore_index})" if self.colors is None else
                    f"grey values that are no colour map index (0..{len(self.colors) - 1})")
            raise ValueError(f"{pair.label}: label has {what}: {unknown.tolist()[:10]}")
        return rgb, self.lut[raw]

    def _raw_ids(self, path: Path) -> tuple[np.ndarray, bool]:
        """Read a label file as raw ids (H, W) uint8, and whether they were decoded colours."""
        if self.colors is None or (self.grey_is_index and png_mode(path) == "L"):
            return read_id_label(path), False
        return color_to_ids(read_rgb(path), self.colors, unknown=UNKNOWN_COLOR), True


def png_mode(path: Path) -> str | None:
    """Return an image file's PIL mode ("L", "P", "RGB"...) from its header; None if unreadable."""
    try:
        with Image.open(path) as image:
            return image.mode
    except (OSError, ValueError):
        return None


def unknown_colours(label_rgb: np.ndarray, where: np.ndarray, shown: int = 5) -> str:
    """Describe the colours of ``label_rgb`` at ``where``: "(r, g, b) x N pixels", most first."""
    colours, counts = np.unique(label_rgb[where].reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts)[:shown]
    text = ", ".join(f"{tuple(int(c) for c in colours[i])} x {counts[i]} pixels" for i in order)
    return text + (f" and {len(colours) - shown} more" if len(colours) > shown else "")


def read_id_label(path: Path) -> np.ndarray:
    """Read an id label PNG as (H, W) uint8 raw ids.

    Accepts 8-bit grey, palette (the index is the id; OpenCV would expand the
    palette to colours, so PIL reads these) and three equal channels.

    Raises:
        ValueError: naming the file if it is unreadable, not 8-bit, or has
            three channels that differ (a colour-coded label).

    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            label = np.asarray(image)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read label image ({exc})") from exc
    if mode in ("RGB", "RGBA"):
        rgb = label[..., :3]
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
            raise ValueError(f"{path}: id labels must be grey, palette or three equal "
                             "channels; this one has colours (use colour labels instead)")
        return np.ascontiguousarray(rgb[..., 0])
    if mode not in ("L", "P"):
        raise ValueError(f"{path}: id labels must be single-channel 8-bit, got PNG mode "
                         f"{mode!r} with shape {label.shape}")
    return label


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; ValueError naming an unreadable file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot read image (missing, corrupt or unknown format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _images_in(folder: Path, split: str | None = None) -> list[Path]:
    """Image files directly in ``folder`` (sorted), those named ``SPLIT_*`` if ``split``."""
    prefix = f"{split}_" if split else ""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.name.startswith(prefix))


def _require_dir(path: Path, layout: str = "") -> Path:
    """Return ``path`` or raise FileNotFoundError naming it and the expected layout."""
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {path}" +
                                (f" (expected layout: {layout})" if layout else ""))
    return path


def _pair_by_stem(images: list[Path], label_dir: Path) -> list[LabeledImage]:
    """Pair each image with ``label_dir/STEM.png``; FileNotFoundError if one is missing."""
    pairs = []
    for image in images:
        label = label_dir / f"{image.stem}.png"
        if not label.is_file():
            raise FileNotFoundError(f"no label {label} for image {image}")
        pairs.append(LabeledImage(image, label))
    return pairs


def _flat_pairs(root: Path, label_dir: str, split: str | None, layout: str
                ) -> list[LabeledImage]:
    """Pairs of ``ROOT/images/NAME`` and ``ROOT/<label_dir>/NAME.png``."""
    images = _images_in(_require_dir(root / "images", layout), split)
    pairs = _pair_by_stem(images, _require_dir(root / label_dir, layout))
    if not pairs:
        raise ValueError(f"{root}: no labeled images" + (f" named {split}_*" if split else "") +
                         f" in {root / 'images'} (expected layout: {layout})")
    return pairs


def identity_remap(classes: ClassSet) -> dict[int, int]:
    """Remap that keeps class ids and the ignore index as they are."""
    mapping = {i: i for i in range(classes.num_classes)}
    mapping[classes.ignore_index] = classes.ignore_index
    return mapping


def _default_remap(fmt: str) -> dict[int, int]:
    """Return the shipped remap of dataset format ``fmt`` (config/remap_FMT.yaml)."""
    return load_remap(resource_path(DEFAULT_REMAPS[fmt]))


FOLDER_LAYOUT = "ROOT/images/NAME.jpg|png + ROOT/labels/NAME.png"
FLAT_LAYOUT = "ROOT/images/NAME.jpg|png + ROOT/annotations/NAME.png"
RUGD_LAYOUT = ("ROOT/RUGD_frames-with-annotations/SEQ/NAME.png + "
               "ROOT/RUGD_annotations/SEQ/NAME.png, or " + FLAT_LAYOUT)
RELLIS_LAYOUT = ("ROOT/**/pylon_camera_node/NAME.jpg + "
                 "ROOT/**/pylon_camera_node_label_id/NAME.png, or " + FLAT_LAYOUT)


def folder_dataset(root: str | Path, classes: ClassSet, label_format: str = "ids",
                   remap: dict[int, int] | None = None,
                   colors: np.ndarray | None = None, split: str | None = None
                   ) -> LabeledImages:
    """Open ``ROOT/images`` + ``ROOT/labels``.

    Args:
        root: dataset folder.
        classes: the project's classes.
        label_format: ``"ids"`` (grey, palette or equal-channel id PNGs) or
            ``"color"`` (RGB PNGs).
        remap: raw id -> project id; default: identity on the project's ids.
        colors: colour map for ``"color"`` labels, row k = raw id k; default:
            the project's class colours.
        split: keep only images named ``SPLIT_*`` (e.g. ``train``).

    """
    check_label_format(label_format)
    root = _require_dir(Path(root), FOLDER_LAYOUT)
    pairs = _flat_pairs(root, "labels", split, FOLDER_LAYOUT)
    if label_format == "color" and colors is None:
        colors = classes.colors
    remap = identity_remap(classes) if remap is None else remap
    return LabeledImages(pairs, classes, remap, colors if label_format == "color" else None,
                         source=str(root))


def ycor_dataset(root: str | Path, classes: ClassSet, remap: dict[int, int] | None = None,
                 split: str | None = None) -> LabeledImages:
    """Open a YCOR folder (palette id PNGs); remap default config/remap_ycor.yaml."""
    remap = _default_remap("ycor") if remap is None else remap
    return folder_dataset(root, classes, "ids", remap, split=split)


def _layout_pairs(root: Path, layout: str, split: str | None,
                  tree_pairs: Callable[[Path, str | None], list[LabeledImage]]
                  ) -> list[LabeledImage]:
    """Pairs of a dataset's flat sample layout (``annotations/`` present) or full tree."""
    if (root / "annotations").is_dir():
        return _flat_pairs(root, "annotations", split, layout)
    pairs = tree_pairs(root, split)
    if not pairs:
        raise ValueError(f"{root}: no labeled images found (expected layout: {layout})")
    return pairs


def _rugd_tree_pairs(root: Path, split: str | None) -> list[LabeledImage]:
    """Pairs of the RUGD release tree: colour annotations beside same-named frames."""
    frames = _require_dir(root / "RUGD_frames-with-annotations", RUGD_LAYOUT)
    labels = _require_dir(root / "RUGD_annotations", RUGD_LAYOUT)
    pairs = []
    for label in sorted(labels.rglob(f"{split}_*.png" if split else "*.png")):
        image = frames / label.relative_to(labels)
        if not image.is_file():
            raise FileNotFoundError(f"no image {image} for RUGD annotation {label}")
        pairs.append(LabeledImage(image, label))
    return pairs


def _rellis_tree_pairs(root: Path, split: str | None) -> list[LabeledImage]:
    """Pairs of the RELLIS-3D release tree: camera frames and their id labels."""
    pairs = []
    for camera_dir in sorted(root.rglob("pylon_camera_node")):
        pairs += _pair_by_stem(_images_in(camera_dir, split),
                               camera_dir.parent / "pylon_camera_node_label_id")
    return pairs


def rugd_dataset(root: str | Path, classes: ClassSet,
                 remap: dict[int, int] | None = None, split: str | None = None
                 ) -> LabeledImages:
    """Open a RUGD tree or flat sample folder (colour-coded annotations).

    The remap defaults to config/remap_rugd.yaml.
    """
    root = _require_dir(Path(root), RUGD_LAYOUT)
    pairs = _layout_pairs(root, RUGD_LAYOUT, split, _rugd_tree_pairs)
    remap = _default_remap("rugd") if remap is None else remap
    return LabeledImages(pairs, classes, remap, RUGD_COLORS, source=str(root))


def rellis_dataset(root: str | Path, classes: ClassSet,
                   remap: dict[int, int] | None = None, split: str | None = None
                   ) -> LabeledImages:
    """Open a RELLIS-3D image tree or flat sample folder (id labels).

    The remap defaults to config/remap_rellis.yaml.
    """
    root = _require_dir(Path(root), RELLIS_LAYOUT)
    pairs = _layout_pairs(root, RELLIS_LAYOUT, split, _rellis_tree_pairs)
    remap = _default_remap("rellis") if remap is None else remap
    return LabeledImages(pairs, classes, remap, source=str(root))


def cvat_dataset(root: str | Path, classes: ClassSet, remap_path: str | Path | None = None,
                 images: str | Path | None = None) -> LabeledImages:
    """Open a CVAT "Segmentation mask 1.1" export (see :mod:`dice_seg_ros.data.cvat`).

    Args:
        root: the unpacked export.
        classes: the project's classes.
        remap_path: YAML ``{label name or labelmap index: class name or id}``; labels it does
            not list map by name, and labels of no project class become ignore.
        images: the frames' images when the export holds none (``JPEGImages/``).

    Raises:
        CvatError: a missing labelmap, label PNG or image, or a bad remap, naming the file.

    """
    root = Path(root)
    labels = read_labelmap(root / "labelmap.txt")
    remap = label_remap(labels, classes, read_name_remap(remap_path) if remap_path else None,
                        str(remap_path))
    if all(v == classes.ignore_index for v in remap.values()):
        raise CvatError(f"{root / 'labelmap.txt'}: no label maps onto the classes "
                        f"{list(classes.names)}; give --remap {{label: class}}")
    pairs = [LabeledImage(image, label)
             for image, label in cvat_pairs(root, images, IMAGE_SUFFIXES)]
    return LabeledImages(pairs, classes, remap, labelmap_colors(labels), source=str(root),
                         grey_is_index=True)


def evenly_spaced(indices: Sequence[int], count: int) -> list[int]:
    """``count`` of ``indices`` spread evenly over them (few-shot subsets)."""
    if count < 1:
        raise ValueError(f"--train-images must be >= 1, got {count}")
    if count >= len(indices):
        return list(indices)
    picks = np.linspace(0, len(indices) - 1, count).round().astype(int)
    return [indices[i] for i in picks]


def sequence_key(path: Path) -> str:
    """Name of the sequence an image belongs to: its folder and stem without frame number."""
    return f"{path.parent}/{path.stem.rstrip('0123456789')}"


def split_by_sequence(files: LabeledImages, fraction: float
                      ) -> tuple[list[int], list[int]]:
    """Hold out the last ``fraction`` of the frames of every sequence (sorted by name).

    Neighbouring frames of a recording are near duplicates, so a random split
    would validate on frames the network has almost seen; a block at the end of
    each sequence does not.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1) or too few images remain.

    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
    sequences: dict[str, list[int]] = {}
    for index, pair in enumerate(files.pairs):
        sequences.setdefault(sequence_key(pair.image), []).append(index)
    train, val = [], []
    for indices in sequences.values():
        indices = sorted(indices, key=lambda i: files.pairs[i].image.name)
        n_val = int(round(len(indices) * fraction))
        if len(sequences) == 1 or len(indices) > 1:
            n_val = max(1, n_val)
        train += indices[:len(indices) - n_val]
        val += indices[len(indices) - n_val:]
    if not train or not val:
        raise ValueError(f"{len(files)} images are too few to hold out a fraction of "
                         f"{fraction} for validation; pass --val-data")
    return train, val


def open_dataset(root: str | Path, fmt: str, classes: ClassSet,
                 remap_path: str | Path | None = None,
                 label_format: str = "ids", split: str | None = None,
                 images: str | Path | None = None) -> LabeledImages:
    """Open a dataset of format ``folder``, ``ycor``, ``rugd``, ``rellis`` or ``cvat``.

    Args:
        root: dataset folder.
        fmt: one of :data:`FORMATS`.
        classes: the project's classes.
        remap_path: remap YAML replacing the format's default.
        label_format: ``folder`` only: ``"ids"`` or ``"color"``.
        split: keep only images named ``SPLIT_*``.
        images: ``cvat`` only: the images folder of an export saved without them.

    """
    if fmt == "cvat":
        return cvat_dataset(root, classes, remap_path, images)
    remap = load_remap(remap_path) if remap_path is not None else None
    if fmt == "folder":
        return folder_dataset(root, classes, label_format, remap, split=split)
    if fmt == "ycor":
        return ycor_dataset(root, classes, remap, split)
    if fmt == "rugd":
        return rugd_dataset(root, classes, remap, split)
    if fmt == "rellis":
        return rellis_dataset(root, classes, remap, split)
    raise ValueError(f"unknown dataset format {fmt!r}; choose one of {list(FORMATS)}")
