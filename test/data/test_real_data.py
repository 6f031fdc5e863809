"""Real-data paths: id PNG kinds, YCOR, flat layouts, camera augmentation, fine-tuning.

Palette and equal-channel id PNGs, the YCOR format and split prefixes, flat
RUGD/RELLIS sample layouts, camera augmentation, sequence splits, ``--init``
and the provenance recorded in model metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dice_seg_ros.classes import load_classes, load_remap
from dice_seg_ros.data.augment import CAMERA_AUGMENT, AugmentConfig, augment, pasta
from dice_seg_ros.data.datasets import (RUGD_CLASSES, RUGD_COLORS, evenly_spaced, folder_dataset,
                                        open_dataset, read_id_label, split_by_sequence)
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.resources import resource_path

CLASSES = load_classes()
YCOR_IDS = {"void": 0, "smooth_trail": 1, "traversable_grass": 2, "rough_trail": 3,
            "puddle": 4, "obstacle": 5, "low_vegetation": 6, "high_vegetation": 7, "sky": 8}


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_palette(path: Path, ids: np.ndarray) -> None:
    """Write an 8-bit palette PNG whose colours differ from its indices (as YCOR's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids, mode="P")
    image.putpalette([(7 * i + 40) % 256 for i in range(256 * 3)])
    image.save(path)


def _ycor_frame(rows: int = 18, cols: int = 24) -> np.ndarray:
    raw = np.zeros((rows, cols), np.uint8)
    for band, name in enumerate(YCOR_IDS):
        raw[2 * band:2 * band + 2] = YCOR_IDS[name]
    return raw


# ------------------------------------------------------------ label files

def test_palette_png_reads_indices_not_colours(tmp_path):
    raw = _ycor_frame()
    _write_palette(tmp_path / "p.png", raw)
    assert np.array_equal(read_id_label(tmp_path / "p.png"), raw)
    # OpenCV expands the palette: reading ids with it would be wrong.
    assert cv2.imread(str(tmp_path / "p.png"), cv2.IMREAD_UNCHANGED).ndim == 3


def test_three_equal_channels_are_ids_and_colours_are_refused(tmp_path):
    raw = _ycor_frame()
    _write_rgb(tmp_path / "grey3.png", np.repeat(raw[..., None], 3, axis=2))
    assert np.array_equal(read_id_label(tmp_path / "grey3.png"), raw)
    colour = np.repeat(raw[..., None], 3, axis=2)
    colour[0, 0] = (1, 2, 3)
    _write_rgb(tmp_path / "colour.png", colour)
    with pytest.raises(ValueError, match=r"colour\.png: id labels must be grey, palette"):
        read_id_label(tmp_path / "colour.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read label image"):
        read_id_label(tmp_path / "broken.png")


# ------------------------------------------------------------------ YCOR

def _ycor_tree(root: Path) -> None:
    for split, count in (("train", 3), ("valid", 2)):
        for i in range(count):
            stem = f"{split}_iid{i:06d}"
            _write_rgb(root / "images" / f"{stem}.jpg", np.full((18, 24, 3), 80, np.uint8))
            _write_palette(root / "labels" / f"{stem}.png", _ycor_frame())


def test_ycor_format_remaps_and_splits(tmp_path):
    _ycor_tree(tmp_path)
    assert len(open_dataset(tmp_path, "ycor", CLASSES)) == 5
    train = open_dataset(tmp_path, "ycor", CLASSES, split="train")
    valid = open_dataset(tmp_path, "ycor", CLASSES, split="valid")
    assert len(train) == 3 and len(valid) == 2
    assert all(p.image.name.startswith("valid_") for p in valid.pairs)
    _, ids = valid[0]
    expected = {"void": 255, "smooth_trail": 2, "traversable_grass": 1, "rough_trail": 2,
                "puddle": 4, "obstacle": 3, "low_vegetation": 5, "high_vegetation": 5,
                "sky": 0}
    for band, name in enumerate(YCOR_IDS):
        assert np.all(ids[2 * band:2 * band + 2] == expected[name]), name
    with pytest.raises(ValueError, match=r"no labeled images named test_\*"):
        open_dataset(tmp_path, "ycor", CLASSES, split="test")


def test_shipped_ycor_remap_covers_every_ycor_id():
    remap = load_remap(resource_path("config/remap_ycor.yaml"))
    assert sorted(remap) == list(range(9))
    assert set(remap.values()) <= set(range(CLASSES.num_classes)) | {CLASSES.ignore_index}


# ------------------------------------------------------- flat RUGD / RELLIS

def test_rugd_flat_sample_layout(tmp_path):
    names = [n for n, _ in RUGD_CLASSES]
    raw = np.full((12, 16), names.index("grass"), np.uint8)
    raw[:4] = names.index("sky")
    _write_rgb(tmp_path / "images" / "creek_00001.png", np.full((12, 16, 3), 9, np.uint8))
    _write_rgb(tmp_path / "annotations" / "creek_00001.png", RUGD_COLORS[raw])
    _, ids = open_dataset(tmp_path, "rugd", CLASSES)[0]
    assert np.all(ids[:4] == CLASSES.index("sky")) and np.all(ids[4:] == CLASSES.index("grass"))


def test_rellis_flat_layout_with_three_channel_ids(tmp_path):
    raw = np.full((12, 16), 3, np.uint8)   # RELLIS grass
    raw[:3] = 7                             # sky
    _write_rgb(tmp_path / "images" / "frame000001.jpg", np.full((12, 16, 3), 9, np.uint8))
    _write_rgb(tmp_path / "annotations" / "frame000001.png", np.repeat(raw[..., None], 3, 2))
    _, ids = open_dataset(tmp_path, "rellis", CLASSES)[0]
    assert np.all(ids[:3] == CLASSES.index("sky")) and np.all(ids[3:] == CLASSES.index("grass"))


@pytest.mark.parametrize("fmt, expected", [
    ("rugd", "RUGD_frames-with-annotations"), ("rellis", "pylon_camera_node"),
    ("folder", "ROOT/labels")])
def test_wrong_layout_errors_say_what_was_expected(tmp_path, fmt, expected):
    (tmp_path / "somewhere").mkdir()
    with pytest.raises((FileNotFoundError, ValueError), match=f"expected layout.*{expected}"):
        open_dataset(tmp_path, fmt, CLASSES)


# ------------------------------------------------------------ augmentation

def test_camera_augmentation_keeps_label_values_and_sizes():
    rgb, ids = generate_scene(4, 128, 96)
    for seed in range(6):
        out_rgb, out_ids = augment(np.random.default_rng(seed), rgb, ids, 64, 48,
                                   CAMERA_AUGMENT)
        assert out_rgb.shape == (48, 64, 3) and out_rgb.dtype == np.uint8
        assert out_ids.shape == (48, 64)
        assert set(np.unique(out_ids)) <= set(np.unique(ids)) | {255}


def test_roll_leaves_ignored_corners():
    rgb, ids = generate_scene(4, 64, 48)
    cfg = AugmentConfig(hflip=0.0, scale=(1.0, 1.0), roll=20.0)
    rng = np.random.default_rng(0)
    _, out_ids = augment(rng, rgb, ids, 64, 48, cfg)
    corners = out_ids[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.sum(corners == 255) >= 2


def test_aspect_stretch_changes_label_geometry():
    ids = np.zeros((48, 64), np.uint8)
    ids[:, 28:36] = 1                       # an 8-pixel-wide column
    rgb = np.zeros((48, 64, 3), np.uint8)
    cfg = AugmentConfig(hflip=0.0, scale=(1.0, 1.0), aspect=(1.5, 1.5), brightness=0,
                        contrast=0, saturation=0)
    _, out_ids = augment(np.random.default_rng(0), rgb, ids, 64, 48, cfg)
    assert out_ids.shape == (48, 64)
    assert abs(int((out_ids[24] == 1).sum()) - 12) <= 1


def test_pasta_keeps_exposure_and_phase_but_changes_texture():
    rgb, _ = generate_scene(2, 96, 64)
    out = pasta(np.random.default_rng(0), rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert abs(out.mean() - rgb.mean()) < 3.0
    assert not np.array_equal(out, rgb)
    # Phases kept: the perturbed image still correlates with the original.
    corr = np.corrcoef(out.astype(float).ravel(), rgb.astype(float).ravel())[0, 1]
    assert corr > 0.5


# ------------------------------------------------------------- training

torch = pytest.importorskip("torch")
from dice_seg_ros.learn import train as train_mod  # noqa: E402
from dice_seg_ros.runtime.model import load_checkpoint  # noqa: E402

TINY = ["--input-size", "32x24", "--batch-size", "2", "--threads", "1", "--quiet",
        "--width-mult", "0.5"]


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    return parser.parse_args([*extra])


def _folder(root: Path, count: int, prefix: str = "seq") -> None:
    for i in range(count):
        rgb, ids = generate_scene(30 + i, 48, 32)
        _write_rgb(root / "images" / f"{prefix}{i:04d}.png", rgb)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "labels" / f"{prefix}{i:04d}.png"), ids)


def test_sequence_split_holds_out_the_end_of_every_sequence(tmp_path):
    _folder(tmp_path, 10, "a_")
    _folder(tmp_path, 10, "b_")
    files = folder_dataset(tmp_path, CLASSES)
    train, val = split_by_sequence(files, 0.2)
    names = sorted(files.pairs[i].image.name for i in val)
    assert names == ["a_0008.png", "a_0009.png", "b_0008.png", "b_0009.png"]
    assert not set(train) & set(val) and len(train) + len(val) == 20
    with pytest.raises(ValueError, match="val-fraction"):
        split_by_sequence(files, 1.0)


def test_evenly_spaced_few_shot_subset():
    assert evenly_spaced(list(range(100, 110)), 3) == [100, 104, 109]
    assert evenly_spaced([1, 2], 5) == [1, 2]
    with pytest.raises(ValueError, match="train-images"):
        evenly_spaced([1], 0)


def test_init_fine_tunes_from_a_checkpoint_and_records_provenance(tmp_path):
    _folder(tmp_path / "data", 6)
    first = train_mod.train(_args("--data", str(tmp_path / "data"), "--epochs", "1",
                                  "--samples-per-epoch", "4", *TINY,
                                  "--data-licence", "CC-BY-4.0", "--out", str(tmp_path / "a")))
    model, meta = load_checkpoint(tmp_path / "a" / "best.pt")
    assert meta.provenance["training_data"][0]["licence"] == "CC-BY-4.0"
    assert meta.provenance["git_commit"]
    # --init: same architecture and input size, weights start from the checkpoint.
    init_args = _args("--data", str(tmp_path / "data"), "--init",
                      str(tmp_path / "a" / "best.pt"), "--out", "x")
    tuned = train_mod.build_and_init(init_args, CLASSES)
    assert tuned[1].arch_kwargs == meta.arch_kwargs
    assert tuned[1].provenance["init_provenance"] == meta.provenance
    assert (tuned[1].input_width, tuned[1].input_height) == (32, 24)
    for key, value in model.state_dict().items():
        assert torch.equal(tuned[0].state_dict()[key], value), key
    assert first["best_dice"] >= 0


def test_init_with_other_classes_restarts_only_the_classifier(tmp_path, capsys):
    _folder(tmp_path / "data", 4)
    train_mod.train(_args("--data", str(tmp_path / "data"), "--epochs", "1",
                          "--samples-per-epoch", "2", *TINY, "--out", str(tmp_path / "a")))
    five = tmp_path / "five.yaml"
    five.write_text("classes:\n" + "".join(
        f"  - {{id: {i}, name: c{i}, color: [{i}, {i}, {i}]}}\n" for i in range(5)))
    classes5 = load_classes(five)
    model, meta = train_mod.build_and_init(
        _args("--data", "synthetic", "--init", str(tmp_path / "a" / "best.pt"),
              "--classes", str(five), "--out", "x"), classes5)
    assert meta.class_names == classes5.names
    assert "classifier" in capsys.readouterr().out
    old, _ = load_checkpoint(tmp_path / "a" / "best.pt")
    assert model.classifier.weight.shape[0] == 5
    assert torch.equal(model.stem[0].weight, old.stem[0].weight)


def test_mix_synthetic_and_val_data(tmp_path):
    _folder(tmp_path / "train", 4)
    _folder(tmp_path / "val", 2)
    args = _args("--data", str(tmp_path / "train"), "--val-data", str(tmp_path / "val"),
                 "--mix-synthetic", "3", "--samples-per-epoch", "5", *TINY, "--out", "x")
    meta = train_mod.make_meta(args, CLASSES)
    train_set, val_set = train_mod.build_datasets(args, meta, CLASSES)
    assert len(train_set) == 5 + 3 and len(val_set) == 2
    names = [d["name"] for d in meta.provenance["training_data"]]
    assert any("generated" in n for n in names) and any("folder" in n for n in names)


def test_obstacle_shading_stays_inside_obstacles_at_the_image_border():
    from dice_seg_ros.data.synthetic import _shade_obstacle

    shade = np.ones((40, 60), np.float32)
    poly = np.array([[-10, 10], [8, 10], [8, 30], [-10, 30]], np.int32).reshape(-1, 1, 2)
    _shade_obstacle(shade, poly, light=1.0)
    inside = np.zeros((40, 60), np.uint8)
    cv2.fillPoly(inside, [poly], 1)
    assert np.all(shade[inside == 0] == 1.0)           # nothing written outside the obstacle
    assert np.any(shade[inside == 1] != 1.0)           # the visible part is shaded
