"""``dice-seg calibrate``: fit the label-free Dice estimate of a model on labeled frames.

Runs the model on labeled frames from rosbags (``--bag``), a dataset folder
(``--dataset``, any format of :func:`~dice_seg_ros.data.datasets.open_dataset`)
and/or generated scenes (``--generated N``), and fits a
:class:`~dice_seg_ros.runtime.estimated_dice.Calibration` from each frame's probability
features to its true mean Dice (the same per-frame figure ``dice-seg eval``
reports). Writes it next to the model (``NAME.quality.json``) unless ``--out``
says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from dice_seg_ros.bags.bag_io import IMAGE_TYPES, BadMessage, BagReader
from dice_seg_ros.bags.evaluate import bag_pairs
from dice_seg_ros.classes import ClassSet, classes_for_model
from dice_seg_ros.data.augment import AUGMENT_PRESETS
from dice_seg_ros.data.datasets import FORMATS, open_dataset, split_by_sequence
from dice_seg_ros.errors import BagError, ModelError
from dice_seg_ros.runtime.estimated_dice import (TEMPERATURES, Calibration, feature_names,
                                                 file_sha256, fit_calibration, fit_temperature,
                                                 frame_features, layout_for, mean_abs_error,
                                                 sidecar_path, spearman, temperature_nll)
from dice_seg_ros.runtime.image_conversion import LABEL_FORMATS, labels_to_ids, msg_to_rgb
from dice_seg_ros.runtime.inference import Segmenter, add_model_arguments, shipped_models
from dice_seg_ros.runtime.metrics import DiceTracker
from dice_seg_ros.runtime.pairing import StampPairer

Frame = tuple[np.ndarray, np.ndarray]


def bag_frames(bag: str | Path, image_topic: str, label_topic: str, classes: ClassSet,
               label_format: str = "ids", max_offset_ms: float = 20.0) -> Iterator[Frame]:
    """Yield ``(rgb, class_ids)`` of each image/label pair of a bag, paired by stamp."""
    def bad(message: BadMessage) -> None:
        raise BagError(f"{bag}: {message.error}")

    with BagReader(bag) as reader:
        reader.check_topic(image_topic, IMAGE_TYPES)
        reader.check_topic(label_topic, IMAGE_TYPES)
        for pair in bag_pairs(reader, image_topic, label_topic, StampPairer(max_offset_ms), bad):
            yield (msg_to_rgb(pair.image[1]),
                   labels_to_ids(pair.label[1], label_format, classes))


def dataset_frames(root: str | Path, fmt: str, classes: ClassSet, remap: Path | None = None,
                   split: str | None = None, held_out: float | None = None,
                   images: str | Path | None = None) -> Iterator[Frame]:
    """Yield ``(rgb, class_ids)`` of a dataset's images (only ``SPLIT_*`` ones with ``split``).

    ``held_out`` keeps only the last fraction of every sequence: the frames that
    ``dice-seg train --val-fraction`` held out of training, so a model can be
    calibrated on real frames it has not learned.
    """
    data = open_dataset(root, fmt, classes, remap, split=split, images=images)
    indices = range(len(data)) if held_out is None else split_by_sequence(data, held_out)[1]
    for index in indices:
        yield data[index]


def generated_frames(count: int, seed: int, width: int = 640, height: int = 480,
                     augment: str | None = None) -> Iterator[Frame]:
    """Yield ``count`` generated scenes ``(rgb, class_ids)``, seeds ``seed``, ``seed + 1``, ...

    ``augment`` names a preset of :data:`~dice_seg_ros.data.augment.AUGMENT_PRESETS`
    that each scene passes through (drawn from ``seed``): looks the network did
    not train on, so that the calibration sees its confidence fail.
    """
    from dice_seg_ros.data.augment import augment as augmented
    from dice_seg_ros.data.synthetic import generate_scene

    rng = np.random.default_rng(seed)
    for k in range(count):
        rgb, ids = generate_scene(seed + k, width, height)
        yield augmented(rng, rgb, ids, width, height, AUGMENT_PRESETS[augment]) if augment \
            else (rgb, ids)


class FrameTable:
    """Per-frame features (at every candidate temperature), true Dice, and pixel NLL."""

    def __init__(self, segmenter: Segmenter, classes: ClassSet) -> None:
        self.segmenter = segmenter
        self.classes = classes
        self.features: list[np.ndarray] = []
        self.dice: list[float] = []
        self.nll = np.zeros(len(TEMPERATURES))

    def add(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Segment one labeled frame; record its features, true mean Dice and NLL."""
        result = self.segmenter.segment(rgb, with_confidence=True)
        ids, confidence = result.network_planes
        if confidence is None:
            raise ModelError(f"{self.segmenter.source}: the model gives no confidence (max "
                             f"softmax probability), which the Dice estimate needs; export "
                             f"it with 'dice-seg export' (class ids + confidence)")
        num_classes = self.classes.num_classes
        tracker = DiceTracker(num_classes, ignore_index=self.classes.ignore_index)
        # The true Dice is the camera-size one eval reports; the features and the temperature
        # come from the network-size planes the runtime estimates from.
        self.dice.append(tracker.update(result.class_ids, labels).mean_dice)
        layout = layout_for(self.classes.names)
        self.features.append(np.stack([
            frame_features(ids, confidence, num_classes, temperature=t, layout=layout)
            for t in TEMPERATURES]))
        small = cv2.resize(labels, (ids.shape[1], ids.shape[0]),
                           interpolation=cv2.INTER_NEAREST_EXACT)
        self.nll += temperature_nll(ids, confidence, small, num_classes,
                                    self.classes.ignore_index)

    def fit(self) -> Calibration:
        """Fit the temperature by NLL, then the calibration at that temperature."""
        if not self.dice:
            raise ValueError("no labeled frames to calibrate on")
        best = int(np.argmin(self.nll))
        features = np.stack(self.features)[:, best]
        return fit_calibration(features, np.asarray(self.dice), fit_temperature(self.nll),
                               feature_names(self.classes.names))

    def features_at(self, temperature: float) -> np.ndarray:
        """Return the ``(N, F)`` features computed at ``temperature`` (one of TEMPERATURES)."""
        return np.stack(self.features)[:, TEMPERATURES.index(temperature)]


def collect(segmenter: Segmenter, frames: Iterable[Frame], classes: ClassSet,
            progress: bool = True, total: int | None = None) -> FrameTable:
    """Run ``segmenter`` over labeled ``frames`` and return their table."""
    table = FrameTable(segmenter, classes)
    for rgb, labels in tqdm(frames, desc="calibrate", unit="frame", total=total,
                            disable=not progress):
        table.add(rgb, labels)
    return table


def fit_figures(calibration: Calibration, table: FrameTable) -> dict[str, float]:
    """Return frames, MAE and Spearman of the calibration's estimates on ``table``."""
    dice = np.asarray(table.dice)
    keep = np.isfinite(dice)
    estimate = calibration.predict(table.features_at(calibration.temperature))[keep]
    return {"frames": int(keep.sum()), "mae": mean_abs_error(estimate, dice[keep]),
            "spearman": spearman(estimate, dice[keep])}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg calibrate`` options."""
    parser.add_argument("--bag", type=Path, action="append", default=[],
                        help="labeled rosbag2 (repeatable); needs --image-topic/--label-topic")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--label-topic", default="/camera/labels")
    parser.add_argument("--label-format", choices=LABEL_FORMATS, default="ids")
    parser.add_argument("--max-offset-ms", type=float, default=20.0,
                        help="largest image/label stamp difference to pair, ms (default 20)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="labeled image folder (see --format)")
    parser.add_argument("--format", choices=FORMATS, default="folder",
                        help="dataset layout (default folder: images/ + labels/)")
    parser.add_argument("--remap", type=Path, default=None,
                        help="dataset label id -> class id YAML (default: the format's)")
    parser.add_argument("--split", default=None,
                        help="only dataset images named SPLIT_* (e.g. train)")
    parser.add_argument("--images", default=None,
                        help="cvat format: the frames' images, when the export holds none")
    parser.add_argument("--held-out", type=float, default=None, metavar="FRACTION",
                        help="only the last FRACTION of every dataset sequence: what "
                             "'dice-seg train --val-fraction FRACTION' kept out of training")
    parser.add_argument("--generated", type=int, default=0,
                        help="also calibrate on N generated 640x480 scenes")
    parser.add_argument("--generated-augment", choices=AUGMENT_PRESETS, default=None,
                        help="pass the generated scenes through this augmentation preset "
                             "(other camera looks: the estimate then ranks frames of unseen "
                             "cameras better)")
    parser.add_argument("--seed", type=int, default=1_000_000,
                        help="first generated scene seed (default 1000000, away from "
                             "training seeds)")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="calibration JSON (default: next to the model, NAME.quality.json; "
                             "for a shipped model, ./NAME.quality.json, so the shipped "
                             "calibration stays as it is)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _frames(args: argparse.Namespace, classes: ClassSet) -> Iterator[Frame]:
    """Chain every labeled frame source the options name."""
    for bag in args.bag:
        yield from bag_frames(bag, args.image_topic, args.label_topic, classes,
                              args.label_format, args.max_offset_ms)
    if args.dataset is not None:
        yield from dataset_frames(args.dataset, args.format, classes, args.remap, args.split,
                                  args.held_out, args.images)
    yield from generated_frames(args.generated, args.seed, augment=args.generated_augment)


def default_output(model: Path) -> Path:
    """Return where a calibration goes by default: beside the model, unless it was shipped.

    A shipped model's calibration is part of the package; a new fit goes to the working
    directory, to be looked at (and moved beside the model) on purpose.
    """
    shipped = {Path(p).resolve() for p in shipped_models()}
    path = sidecar_path(model)
    return Path(path.name) if model.resolve() in shipped else path


def run(args: argparse.Namespace) -> int:
    """Fit, write and summarise the calibration."""
    if not args.bag and args.dataset is None and args.generated <= 0:
        raise ValueError("give labeled frames: --bag, --dataset and/or --generated N")
    segmenter = Segmenter(args.model, backend=args.backend, device=args.device,
                          threads=args.threads, estimate_dice=False)
    classes = classes_for_model(segmenter.meta.class_names)
    start = time.perf_counter()
    table = collect(segmenter, _frames(args, classes), classes, progress=not args.no_progress)
    calibration = table.fit()
    calibration.model_file = segmenter.model_path.name
    calibration.model_sha256 = file_sha256(segmenter.model_path)
    sources = [str(bag) for bag in args.bag]
    if args.dataset is not None:
        sources.append(f"{args.dataset} ({args.format}, split {args.split or 'all'}"
                       + (f", last {args.held_out:g} of every sequence" if args.held_out else "")
                       + ")")
    if args.generated > 0:
        sources.append(f"{args.generated} generated scenes from seed {args.seed}"
                       + (f", augmented ({args.generated_augment})"
                          if args.generated_augment else ""))
    calibration.fit = dict(fit_figures(calibration, table), data=sources,
                           note="figures on the fitting frames themselves")
    out = calibration.save(args.out or default_output(segmenter.model_path))
    fit = calibration.fit
    print(f"calibrated on {fit['frames']} frames in {time.perf_counter() - start:.0f} s: "
          f"temperature {calibration.temperature:.2f}, in-sample MAE {fit['mae']:.3f}, "
          f"Spearman {fit['spearman']:.3f}\nwrote {out}")
    return 0
