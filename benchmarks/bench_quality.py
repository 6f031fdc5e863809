"""Label-free estimated Dice: cost against inference, and accuracy on real frames.

Cost: :func:`~dice_seg_ros.runtime.estimated_dice.frame_features` (at a temperature other
than 1) on the network-resolution class ids and confidence of a 640x480 frame
(where the Segmenter computes them), against ``Segmenter.segment()`` of the
same frame (the baseline), timed round-robin in the same run. Goal: features
<= 10 % of inference.

Accuracy (with ``--ycor DIR``): calibrations fitted on generated scenes, on
YCOR train, and on both, each scored on YCOR valid by per-frame Spearman
correlation and mean absolute error between estimated and true mean Dice
(goal: Spearman >= 0.6, MAE <= 0.10). The uncalibrated expected soft Dice is
printed beside them as the baseline. ``--scatter PNG`` plots estimated against
true Dice on YCOR valid for the calibration fitted on generated scenes plus
YCOR train. Every calibration is also scored on 100 held-out generated scenes
(seeds from 2000000).

Unseen camera (with ``--ycor DIR --unseen``, for a model that never saw YCOR
such as ``models/terrain_seg_synthetic.onnx``): the calibration fitted on
generated scenes alone (as the shipped ones are) is scored on every YCOR frame,
train and valid, by Spearman and MAE, beside each feature alone (its rank
correlation with true Dice, sign included); ``--scatter`` then plots that.

A model trained on YCOR train would look better calibrated than it is on
frames it learned: ``--held-out 0.1`` calibrates on the last 10 % of YCOR
train only, the frames ``dice-seg train --val-fraction 0.1`` kept out.

Run: ``python benchmarks/bench_quality.py [--ycor ../shared/realdata/ycor]
[--generated 300] [--model M.onnx] [--held-out 0.1] [--unseen] [--scatter PNG]``
"""

import argparse
from pathlib import Path

import numpy as np
from bench_metrics import interleaved_ms

from dice_seg_ros.bags.calibrate import FrameTable, collect, dataset_frames, generated_frames
from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.runtime.estimated_dice import (BASE_FEATURES, SHAPE_FEATURES, Calibration,
                                                 fit_calibration, frame_features, layout_for,
                                                 mean_abs_error, spearman)
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.report import plot_estimated_vs_true


def cost(segmenter: Segmenter, temperature: float, repeats: int) -> None:
    """Print ms per frame of segment() and of the features, and their ratio."""
    rgb, _ = generate_scene(7)
    result = segmenter.segment(rgb, with_confidence=True)
    classes = segmenter.meta.num_classes
    layout = layout_for(segmenter.meta.class_names)
    funcs = {"segment 640x480": lambda: segmenter.segment(rgb),
             "features": lambda: frame_features(*result.network_planes, classes,
                                                temperature=temperature, layout=layout)}
    median = {name: med for name, (med, _) in interleaved_ms(funcs, repeats).items()}
    for name, ms in median.items():
        print(f"  {name:<16} {ms:7.3f} ms (median of {repeats})")
    print(f"  features / segment = {median['features'] / median['segment 640x480']:.3f} "
          f"(goal <= 0.10)")


def merged(tables: list[FrameTable]) -> FrameTable:
    """Return one table holding the frames of ``tables``."""
    out = FrameTable(tables[0].segmenter, tables[0].classes)
    for table in tables:
        out.features += table.features
        out.dice += table.dice
        out.nll += table.nll
    return out


def score(calibration: Calibration, table: FrameTable) -> tuple[float, float, np.ndarray,
                                                                np.ndarray]:
    """Return (Spearman, MAE, estimates, true Dice) of a calibration on a table."""
    dice = np.asarray(table.dice)
    keep = np.isfinite(dice)
    estimate = calibration.predict(table.features_at(calibration.temperature))[keep]
    return spearman(estimate, dice[keep]), mean_abs_error(estimate, dice[keep]), estimate, \
        dice[keep]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--ycor", type=Path, default=None, help="YCOR folder (images/, labels/)")
    parser.add_argument("--generated", type=int, default=300,
                        help="generated scenes to calibrate on (seeds from 1000000)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--scatter", type=Path, default=None)
    parser.add_argument("--generated-augment", default=None,
                        help="augmentation preset the generated scenes pass through (as "
                             "'dice-seg calibrate --generated-augment')")
    parser.add_argument("--unseen", action="store_true",
                        help="score the calibration fitted on generated scenes on all YCOR "
                             "frames (for a model that never saw YCOR)")
    parser.add_argument("--held-out", type=float, default=None, metavar="FRACTION",
                        help="calibrate on the last FRACTION of YCOR train only: for a model "
                             "trained on YCOR train with --val-fraction FRACTION")
    args = parser.parse_args()
    classes = load_classes()
    segmenter = Segmenter(args.model, device="cpu", threads=1)
    print(f"model {segmenter.source}, network input {segmenter.input_size[0]}x"
          f"{segmenter.input_size[1]} px, 1 thread")
    print("cost per frame:")
    cost(segmenter, temperature=1.5, repeats=args.repeats)
    if args.ycor is None:
        return
    sets = {"generated": collect(segmenter, generated_frames(args.generated, 1_000_000,
                                                             augment=args.generated_augment),
                                 classes, total=args.generated)}
    if args.unseen:
        unseen(sets["generated"], collect(segmenter, dataset_frames(args.ycor, "ycor", classes),
                                          classes), segmenter.calibration, args.scatter)
        return
    sets["generated held-out"] = collect(segmenter, generated_frames(100, 2_000_000), classes,
                                         total=100)
    for split, held_out in (("train", args.held_out), ("valid", None)):
        sets[f"ycor {split}"] = collect(
            segmenter, dataset_frames(args.ycor, "ycor", classes, split=split,
                                      held_out=held_out), classes)
    valid = sets["ycor valid"]
    truth = np.asarray(valid.dice)
    keep = np.isfinite(truth)
    soft = valid.features_at(1.0)[keep, BASE_FEATURES.index("soft_dice")]
    print(f"YCOR valid: {keep.sum()} frames, true mean Dice {truth[keep].mean():.3f}")
    print(f"  baseline (uncalibrated soft Dice): Spearman {spearman(soft, truth[keep]):.3f} "
          f"MAE {mean_abs_error(soft, truth[keep]):.3f}")
    fits = {"generated": [sets["generated"]], "ycor train": [sets["ycor train"]],
            "generated + ycor train": [sets["generated"], sets["ycor train"]]}
    shown = None
    for name, parts in fits.items():
        table = merged(parts)
        calibration = table.fit()
        rho, mae, estimate, true = score(calibration, valid)
        if name == "generated + ycor train":
            shown = (name, estimate, true)
        held_rho, held_mae, _, _ = score(calibration, sets["generated held-out"])
        print(f"  calibrated on {name} ({len(table.dice)} frames, T "
              f"{calibration.temperature:.2f}): Spearman {rho:.3f} MAE {mae:.3f}; on 100 "
              f"held-out generated scenes: Spearman {held_rho:.3f} MAE {held_mae:.3f}")
        single = fit_calibration(table.features_at(calibration.temperature)[:, :1],
                                 np.asarray(table.dice), calibration.temperature,
                                 BASE_FEATURES[:1])
        rho, mae, _, _ = score(single, _columns(valid, [0]))
        print(f"    soft Dice alone + isotonic: Spearman {rho:.3f} MAE {mae:.3f}")
    if args.scatter is not None and shown is not None:
        plot_estimated_vs_true(args.scatter, shown[1], shown[2],
                               f"YCOR valid, calibrated on {shown[0]}")
        print(f"wrote {args.scatter}")


def unseen(generated: FrameTable, ycor: FrameTable, shipped: Calibration | None,
           scatter: Path | None) -> None:
    """Print how a calibration fitted on generated scenes ranks every YCOR frame.

    ``shipped``, the model's own calibration, is scored beside the fresh fit.
    """
    calibration = generated.fit()
    rho, mae, estimate, true = score(calibration, ycor)
    print(f"all YCOR frames ({len(true)}, true mean Dice {true.mean():.3f}), calibrated on "
          f"{len(generated.dice)} generated scenes (T {calibration.temperature:.2f}): "
          f"Spearman {rho:.3f} MAE {mae:.3f} (mean estimate {estimate.mean():.3f})")
    keep = [k for k, name in enumerate(calibration.feature_names)
            if name not in SHAPE_FEATURES]
    features = generated.features_at(calibration.temperature)[:, keep]
    without = fit_calibration(features, np.asarray(generated.dice), calibration.temperature,
                              [calibration.feature_names[k] for k in keep])
    rho, mae, _, _ = score(without, _columns(ycor, keep))
    print(f"  without the shape features: Spearman {rho:.3f} MAE {mae:.3f}")
    if shipped is not None:
        rho, mae, _, _ = score(shipped, ycor)
        print(f"  the model's calibration ({shipped.fit.get('data')}): Spearman {rho:.3f} "
              f"MAE {mae:.3f}")
    features = ycor.features_at(calibration.temperature)
    keep = np.isfinite(ycor.dice)
    for k, name in enumerate(calibration.feature_names):
        print(f"  {name:<20} alone: Spearman {spearman(features[keep, k], true):+.3f}")
    if scatter is not None:
        plot_estimated_vs_true(scatter, estimate, true, "YCOR (unseen), generated calibration")
        print(f"wrote {scatter}")


def _columns(table: FrameTable, keep: list[int]) -> FrameTable:
    """Return a copy of ``table`` keeping only the features at indices ``keep``."""
    out = FrameTable(table.segmenter, table.classes)
    out.features = [f[:, keep] for f in table.features]
    out.dice = table.dice
    return out


if __name__ == "__main__":
    main()
