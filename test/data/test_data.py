"""Generated scenes, augmentation, dataset loaders (folder, RUGD, RELLIS-3D), torch datasets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dice_seg_ros.classes import load_classes, load_remap
from dice_seg_ros.data import synthetic
from dice_seg_ros.data.augment import AugmentConfig, augment, color_jitter
from dice_seg_ros.data.datasets import (RUGD_CLASSES, RUGD_COLORS, folder_dataset, open_dataset,
                                        rellis_dataset, rugd_dataset)
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.resources import resource_path

CLASSES = load_classes()


# ------------------------------------------------------------------ scenes

def test_scene_shapes_types_and_determinism():
    rgb, ids = generate_scene(5, 160, 120)
    assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
    assert ids.shape == (120, 160) and ids.dtype == np.uint8
    again_rgb, again_ids = generate_scene(5, 160, 120)
    assert np.array_equal(rgb, again_rgb) and np.array_equal(ids, again_ids)
    other_rgb, other_ids = generate_scene(6, 160, 120)
    assert not np.array_equal(rgb, other_rgb)
    assert not np.array_equal(ids, other_ids)


def test_scene_default_size_is_vga():
    rgb, ids = generate_scene(0)
    assert rgb.shape == (480, 640, 3) and ids.shape == (480, 640)


def test_scene_classes_match_config_and_obstacles_are_rare():
    assert synthetic.CLASS_NAMES == CLASSES.names
    counts = np.zeros(CLASSES.num_classes)
    for seed in range(40):
        _, ids = generate_scene(seed, 160, 120)
        assert ids.max() < CLASSES.num_classes
        counts += np.bincount(ids.ravel(), minlength=CLASSES.num_classes)
    fractions = counts / counts.sum()
    assert np.all(fractions > 0), f"a class never appears: {fractions}"
    assert 0.005 < fractions[CLASSES.index("obstacle")] < 0.06
    # Sky above the horizon: the top row is sky or tree, never ground classes.
    _, ids = generate_scene(1, 160, 120)
    assert set(np.unique(ids[0])) <= {CLASSES.index("sky"), CLASSES.index("tree")}


@pytest.mark.parametrize("size", [(8, 120), (160, 15)])
def test_scene_too_small_is_rejected(size):
    with pytest.raises(ValueError, match="at least 16x16"):
        generate_scene(0, *size)


def test_scene_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        generate_scene(-1, 64, 48)


# ------------------------------------------------------------ augmentation

def _coloured(ids: np.ndarray) -> np.ndarray:
    return CLASSES.palette()[ids]


def test_flip_moves_image_and_labels_together():
    _, ids = generate_scene(2, 64, 48)
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(hflip=1.0, scale=(1.0, 1.0), brightness=0, contrast=0, saturation=0)
    rgb_out, ids_out = augment(rng, _coloured(ids), ids, 64, 48, cfg)
    assert np.array_equal(ids_out, ids[:, ::-1])
    assert np.array_equal(rgb_out, _coloured(ids)[:, ::-1])


def test_zoom_in_crops_consistently_and_keeps_label_values():
    _, ids = generate_scene(3, 96, 72)
    rng = np.random.default_rng(1)
    cfg = AugmentConfig(hflip=0.0, scale=(2.0, 2.0), brightness=0, contrast=0, saturation=0)
    rgb_out, ids_out = augment(rng, _coloured(ids), ids, 96, 72, cfg)
    assert ids_out.shape == (72, 96) and rgb_out.shape == (72, 96, 3)
    # Nearest-neighbour labels: no invented ids.
    assert set(np.unique(ids_out)) <= set(np.unique(ids))
    # Away from class borders the image colour still encodes the label.
    flat = cv2.erode((ids_out == ids_out[36, 48]).astype(np.uint8), np.ones((5, 5)),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0)
    assert np.all(rgb_out[flat > 0] == CLASSES.colors[ids_out[36, 48]])


def test_zoom_out_pads_with_ignore():
    _, ids = generate_scene(4, 64, 48)
    cfg = AugmentConfig(hflip=0.0, scale=(0.5, 0.5))
    rgb_out, ids_out = augment(np.random.default_rng(2), _coloured(ids), ids, 64, 48, cfg, 255)
    assert ids_out.shape == (48, 64)
    assert np.sum(ids_out == 255) == 64 * 48 - 32 * 24
    assert np.all(rgb_out[ids_out == 255] == 0)


def test_color_jitter_changes_colours_only():
    rgb, _ = generate_scene(5, 64, 48)
    out = color_jitter(np.random.default_rng(3), rgb, AugmentConfig(brightness=0.5))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.array_equal(out, rgb)


def test_augment_rejects_size_mismatch():
    with pytest.raises(ValueError, match="64x48 but labels are 32x24"):
        augment(np.random.default_rng(0), np.zeros((48, 64, 3), np.uint8),
                np.zeros((24, 32), np.uint8), 32, 24)


# ---------------------------------------------------------------- loaders

def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), ids)


def _folder(root: Path, count: int = 3, color: bool = False) -> list[np.ndarray]:
    labels = []
    for i in range(count):
        rgb, ids = generate_scene(10 + i, 48, 32)
        _write_rgb(root / "images" / f"f{i}.png", rgb)
        if color:
            _write_rgb(root / "labels" / f"f{i}.png", _coloured(ids))
        else:
            _write_ids(root / "labels" / f"f{i}.png", ids)
        labels.append(ids)
    return labels


def test_folder_id_labels_round_trip(tmp_path):
    labels = _folder(tmp_path)
    data = folder_dataset(tmp_path, CLASSES)
    assert len(data) == 3
    rgb, ids = data[1]
    assert rgb.shape == (32, 48, 3) and np.array_equal(ids, labels[1])


def test_folder_colour_labels_decode_to_ids(tmp_path):
    labels = _folder(tmp_path, color=True)
    _, ids = open_dataset(tmp_path, "folder", CLASSES, label_format="color")[2]
    assert np.array_equal(ids, labels[2])


def test_folder_colour_outside_map_is_an_error(tmp_path):
    _folder(tmp_path, 1, color=True)
    bad = np.full((32, 48, 3), 7, np.uint8)
    _write_rgb(tmp_path / "labels" / "f0.png", bad)
    with pytest.raises(ValueError, match=r"f0\.png.*colours not in the colour map"):
        folder_dataset(tmp_path, CLASSES, "color")[0]


def test_folder_remap_applies(tmp_path):
    labels = _folder(tmp_path, 1)
    remap_file = tmp_path / "remap.yaml"
    remap_file.write_text("remap: {0: 5, 1: 1, 2: 2, 3: 3, 4: 4, 5: 0}\n")
    _, ids = open_dataset(tmp_path, "folder", CLASSES, remap_file)[0]
    assert np.array_equal(ids == 5, labels[0] == 0)
    assert np.array_equal(ids == 0, labels[0] == 5)


def test_folder_label_value_outside_classes_is_an_error(tmp_path):
    _folder(tmp_path, 1)
    ids = np.zeros((32, 48), np.uint8)
    ids[3, 4] = 9
    _write_ids(tmp_path / "labels" / "f0.png", ids)
    with pytest.raises(ValueError, match=r"f0\.png.*\[9\]"):
        folder_dataset(tmp_path, CLASSES)[0]


def test_folder_ignore_value_is_allowed(tmp_path):
    _folder(tmp_path, 1)
    _write_ids(tmp_path / "labels" / "f0.png", np.full((32, 48), 255, np.uint8))
    assert np.all(folder_dataset(tmp_path, CLASSES)[0][1] == 255)


def test_folder_size_mismatch_names_both_files(tmp_path):
    _folder(tmp_path, 1)
    _write_ids(tmp_path / "labels" / "f0.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"f0\.png: label is 10x10 .* is 48x32"):
        folder_dataset(tmp_path, CLASSES)[0]


def test_folder_empty_and_missing(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match="no labeled images"):
        folder_dataset(tmp_path, CLASSES)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        folder_dataset(tmp_path / "nowhere", CLASSES)
    _write_rgb(tmp_path / "images" / "lonely.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="lonely"):
        folder_dataset(tmp_path, CLASSES)


def test_folder_corrupt_image_is_named(tmp_path):
    _folder(tmp_path, 1)
    (tmp_path / "images" / "f0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"f0\.png: cannot read image"):
        folder_dataset(tmp_path, CLASSES)[0]


def test_shipped_remaps_cover_the_datasets_and_target_classes():
    rugd = load_remap(resource_path("config/remap_rugd.yaml"))
    rellis = load_remap(resource_path("config/remap_rellis.yaml"))
    assert sorted(rugd) == list(range(len(RUGD_CLASSES)))
    assert sorted(rellis) == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 17, 18, 19, 23, 27, 31, 33,
                              34]
    valid = set(range(CLASSES.num_classes)) | {CLASSES.ignore_index}
    assert set(rugd.values()) <= valid and set(rellis.values()) <= valid
    names = [n for n, _ in RUGD_CLASSES]
    assert rugd[names.index("rock")] == CLASSES.index("obstacle")
    assert rugd[names.index("sky")] == CLASSES.index("sky")
    assert rellis[31] == CLASSES.index("water")  # puddle


def test_rugd_colour_annotations(tmp_path):
    names = [n for n, _ in RUGD_CLASSES]
    raw = np.zeros((16, 24), np.uint8)
    raw[:4] = names.index("sky")
    raw[4:8] = names.index("grass")
    raw[8:12] = names.index("gravel")
    raw[12:, :12] = names.index("rock")
    raw[12:, 12:] = names.index("void")
    _write_rgb(tmp_path / "RUGD_frames-with-annotations" / "trail-1" / "trail-1_00001.png",
               np.full((16, 24, 3), 90, np.uint8))
    _write_rgb(tmp_path / "RUGD_annotations" / "trail-1" / "trail-1_00001.png", RUGD_COLORS[raw])
    data = rugd_dataset(tmp_path, CLASSES)
    assert len(data) == 1
    _, ids = data[0]
    assert np.all(ids[:4] == CLASSES.index("sky"))
    assert np.all(ids[4:8] == CLASSES.index("grass"))
    assert np.all(ids[8:12] == CLASSES.index("trail"))
    assert np.all(ids[12:, :12] == CLASSES.index("obstacle"))
    assert np.all(ids[12:, 12:] == CLASSES.ignore_index)
    bad = RUGD_COLORS[raw].copy()
    bad[0, 0] = (1, 2, 3)
    _write_rgb(tmp_path / "RUGD_annotations" / "trail-1" / "trail-1_00001.png", bad)
    with pytest.raises(ValueError, match="colours not in the colour map"):
        rugd_dataset(tmp_path, CLASSES)[0]


def test_rellis_id_labels(tmp_path):
    seq = tmp_path / "Rellis-3D" / "00000"
    raw = np.zeros((16, 24), np.uint8)
    raw[:5] = 7     # sky
    raw[5:10] = 3   # grass
    raw[10:] = 31   # puddle
    _write_rgb(seq / "pylon_camera_node" / "frame000000-1581624652_750.jpg",
               np.full((16, 24, 3), 120, np.uint8))
    _write_ids(seq / "pylon_camera_node_label_id" / "frame000000-1581624652_750.png", raw)
    data = open_dataset(tmp_path, "rellis", CLASSES)
    _, ids = data[0]
    assert np.all(ids[:5] == CLASSES.index("sky"))
    assert np.all(ids[5:10] == CLASSES.index("grass"))
    assert np.all(ids[10:] == CLASSES.index("water"))
    raw[0, 0] = 2  # not a RELLIS image class
    _write_ids(seq / "pylon_camera_node_label_id" / "frame000000-1581624652_750.png", raw)
    with pytest.raises(ValueError, match=r"\[2\]"):
        rellis_dataset(tmp_path, CLASSES)[0]


def test_unknown_format_and_bad_remap_target(tmp_path):
    _folder(tmp_path, 1)
    with pytest.raises(ValueError, match="unknown dataset format"):
        open_dataset(tmp_path, "kitti", CLASSES)
    with pytest.raises(ValueError, match="remap targets"):
        folder_dataset(tmp_path, CLASSES, remap={0: 9})


# ---------------------------------------------------------- torch datasets

def test_torch_synthetic_dataset_shapes_and_epochs():
    torch = pytest.importorskip("torch")
    from dice_seg_ros.data.torch_dataset import SyntheticScenes
    from dice_seg_ros.runtime.model import default_meta

    meta = default_meta(CLASSES.names, 64, 48)
    train = SyntheticScenes(meta, 4, seed=1)
    x, y = train[0]
    assert x.shape == (3, 48, 64) and x.dtype == torch.float32
    assert y.shape == (48, 64) and y.dtype == torch.int64
    assert torch.equal(train[0][1], y)
    train.set_epoch(1)
    assert not torch.equal(train[0][1], y)
    val = SyntheticScenes(meta, 2, 1000, train=False)
    val.set_epoch(3)
    _, ids = generate_scene(1000, 64, 48)
    assert np.array_equal(val[0][1].numpy(), ids)
