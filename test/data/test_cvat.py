"""CVAT "Segmentation mask 1.1" exports: names onto classes, remaps, and errors naming files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.cvat import CvatError
from dice_seg_ros.data.datasets import open_dataset

CLASSES = load_classes()
# CVAT's own colours, none of them the project's: what a labeling team's export holds.
LABELMAP = {"background": (0, 0, 0), "Trail": (250, 50, 83), "grass": (42, 125, 209),
            "rock": (255, 204, 51), "sky": (61, 245, 61)}


def write_export(root: Path, ids: list[np.ndarray], with_images: bool = True,
                 labelmap: dict[str, tuple[int, int, int]] = LABELMAP) -> Path:
    """Write an export whose frame k labels pixel (y, x) with label ``ids[k][y, x]``."""
    names = list(labelmap)
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{','.join(map(str, rgb))}::" for name, rgb in labelmap.items()]
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    colours = np.array([labelmap[n] for n in names], np.uint8)
    frames = []
    for k, label in enumerate(ids):
        name = f"frame_{k:06d}"
        frames.append(name)
        cv2.imwrite(str(root / "SegmentationClass" / f"{name}.png"), colours[label][..., ::-1])
        if with_images:
            (root / "JPEGImages").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"),
                        np.full((*label.shape, 3), 90 + k, np.uint8))
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(frames) + "\n")
    return root


def layout() -> np.ndarray:
    """Return a 12x16 label: background, Trail, grass, rock and sky bands (labelmap indices)."""
    label = np.zeros((12, 16), np.int64)
    for index in range(1, 5):
        label[:, 3 * index: 3 * index + 3] = index
    return label


def test_names_map_onto_classes_case_free_and_the_rest_is_ignored(tmp_path):
    root = write_export(tmp_path / "export", [layout(), layout()])
    data = open_dataset(root, "cvat", CLASSES)
    assert len(data) == 2
    rgb, ids = data[0]
    assert rgb.shape == (12, 16, 3)
    expected = np.array([CLASSES.ignore_index, CLASSES.index("trail"), CLASSES.index("grass"),
                         CLASSES.ignore_index, CLASSES.index("sky")])[layout()]
    assert (ids == expected).all()


def test_remap_by_name_or_index_overrides_names(tmp_path):
    root = write_export(tmp_path / "export", [layout()])
    remap = tmp_path / "remap.yaml"
    remap.write_text("rock: obstacle\n2: trail\n")
    _, ids = open_dataset(root, "cvat", CLASSES, remap)[0]
    assert (ids[layout() == 3] == CLASSES.index("obstacle")).all()
    assert (ids[layout() == 2] == CLASSES.index("trail")).all()


def test_images_from_another_folder_when_the_export_has_none(tmp_path):
    root = write_export(tmp_path / "export", [layout()], with_images=False)
    with pytest.raises(CvatError, match="--images"):
        open_dataset(root, "cvat", CLASSES)
    images = tmp_path / "picks"
    images.mkdir()
    cv2.imwrite(str(images / "frame_000000.png"), np.zeros((12, 16, 3), np.uint8))
    assert open_dataset(root, "cvat", CLASSES, images=images)[0][0].shape == (12, 16, 3)


def test_colour_missing_from_the_labelmap_names_file_colour_and_count(tmp_path):
    root = write_export(tmp_path / "export", [layout()])
    label = root / "SegmentationClass" / "frame_000000.png"
    bgr = cv2.imread(str(label))
    bgr[:2, :3] = (7, 8, 9)
    cv2.imwrite(str(label), bgr)
    with pytest.raises(ValueError, match=r"frame_000000.png.*\(9, 8, 7\) x 6 pixels"):
        open_dataset(root, "cvat", CLASSES)[0]


def test_listed_frame_without_its_label_is_named(tmp_path):
    root = write_export(tmp_path / "export", [layout(), layout()])
    (root / "SegmentationClass" / "frame_000001.png").unlink()
    with pytest.raises(CvatError, match="frame_000001.png.*no label PNG"):
        open_dataset(root, "cvat", CLASSES)


@pytest.mark.parametrize("text, needle", [
    ("sky:1,2::\n", "labelmap.txt:1: expected 'name:r,g,b::'"),
    ("sky:1,2,3::\ntree:1,2,3::\n", "stand for more than one label"),
    ("cloud:1,2,3::\n", "no label maps onto the classes"),
])
def test_bad_labelmap_is_one_clear_error(tmp_path, text, needle):
    root = write_export(tmp_path / "export", [layout()])
    (root / "labelmap.txt").write_text(text)
    with pytest.raises(CvatError, match=needle):
        open_dataset(root, "cvat", CLASSES)


def test_remap_to_an_unknown_class_is_refused(tmp_path):
    root = write_export(tmp_path / "export", [layout()])
    remap = tmp_path / "remap.yaml"
    remap.write_text("rock: boulder\n")
    with pytest.raises(CvatError, match="'boulder' is not a class"):
        open_dataset(root, "cvat", CLASSES, remap)


def test_label_without_its_image_is_named(tmp_path):
    root = write_export(tmp_path / "export", [layout(), layout()])
    next((root / "JPEGImages").glob("frame_000001.*")).unlink()
    with pytest.raises(CvatError, match=r"no image frame_000001\.\*.*frame_000001\.png"):
        open_dataset(root, "cvat", CLASSES)


def test_palette_label_pngs_read_like_rgb_ones(tmp_path):
    """Some tools save the masks as indexed (palette) PNGs; their colours are what counts."""
    root = write_export(tmp_path / "export", [layout()])
    label = root / "SegmentationClass" / "frame_000000.png"
    _, rgb_ids = open_dataset(root, "cvat", CLASSES)[0]
    palette = [c for rgb in LABELMAP.values() for c in rgb]
    indexed = Image.fromarray(layout().astype(np.uint8), mode="P")
    indexed.putpalette(palette)
    indexed.save(label)
    _, ids = open_dataset(root, "cvat", CLASSES)[0]
    assert (ids == rgb_ids).all()


def test_one_channel_masks_hold_labelmap_indices(tmp_path):
    """A mask of one channel (CVAT allows 1 or 3) holds labelmap indices as grey values."""
    root = write_export(tmp_path / "export", [layout()])
    label = root / "SegmentationClass" / "frame_000000.png"
    _, rgb_ids = open_dataset(root, "cvat", CLASSES)[0]
    Image.fromarray(layout().astype(np.uint8), mode="L").save(label)
    _, ids = open_dataset(root, "cvat", CLASSES)[0]
    assert (ids == rgb_ids).all()
    beyond = layout().astype(np.uint8)
    beyond[0, :2] = len(LABELMAP) + 2
    Image.fromarray(beyond, mode="L").save(label)
    with pytest.raises(ValueError, match=r"frame_000000.png.*no colour map index.*\[7\]"):
        open_dataset(root, "cvat", CLASSES)[0]
