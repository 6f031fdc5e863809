"""``dice-seg finetune``: fit a trained network to one camera from a few labeled frames.

Built for 4-64 frames of one camera (the frames ``dice-seg mine`` picked and a person labeled).
The recipe, measured on YCOR as a "new camera" (docs/FINETUNE.md, benchmarks/flywheel_study.py):

- start from the shipped default's weights (``--init``);
- keep what the network knew: generated scenes are mixed into every epoch so classes the new
  frames lack are not forgotten (``--freeze-bn`` also keeps the starting BatchNorm statistics;
  measured on YCOR it scores lower than letting them follow the new camera);
- a fixed budget of optimiser steps with camera augmentation (exposure, white balance, blur,
  noise, JPEG, roll, zoom), so a few frames yield many different samples;
- hold out frames for choosing the checkpoint and for the before/after report when there are
  enough of them (``--holdout``; by default a quarter from 16 frames up).

The run folder holds ``model.onnx`` (ready for the node's ``model_path:=``), ``model.pt`` (for a
later ``--init``), ``report.md`` with mean Dice before and after on the held-out frames,
``curves.png`` and ``log.csv``. Interrupted runs continue where they stopped when run again
with the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dice_seg_ros.classes import ClassSet, load_classes
from dice_seg_ros.data.augment import AUGMENT_PRESETS
from dice_seg_ros.data.datasets import FORMATS, LabeledImages, evenly_spaced, open_dataset
from dice_seg_ros.data.torch_dataset import EpochConcat, FileScenes, SyntheticScenes
from dice_seg_ros.errors import DiceSegError
from dice_seg_ros.learn import train as training
from dice_seg_ros.learn.export import export_checkpoint
from dice_seg_ros.resources import DEFAULT_TORCH_MODEL, resource_path
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.metrics import ConfusionMatrix
from dice_seg_ros.runtime.model_meta import ModelMeta

# Held out by default only from this many frames up: below it every frame is worth more as
# training data than as a noisy one- or two-frame score.
MIN_FRAMES_FOR_HOLDOUT = 16
HOLDOUT_FRACTION = 0.25
MAX_FRAMES = 500


class FinetuneError(DiceSegError):
    """The fine-tuning data or options cannot make a run (too few frames, bad split)."""


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning schedule.

    Attributes:
        steps: optimiser steps in all (batches of ``batch_size`` samples).
        epochs: the steps are split into this many epochs (one checkpoint and log row each).
        batch_size: samples per step.
        lr: peak learning rate of the one-cycle schedule.
        generated_share: generated scenes per labeled sample in each epoch (0.25 = one in five
            samples is generated).
        freeze_bn: keep the starting weights' BatchNorm statistics (off: letting them follow
            the new camera scored higher on YCOR).
        augment: augmentation preset (see ``dice_seg_ros.data.augment``).

    """

    steps: int = 600
    epochs: int = 4
    batch_size: int = 8
    lr: float = 1e-3
    generated_share: float = 0.25
    freeze_bn: bool = False
    augment: str = "camera"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``dice-seg finetune`` options."""
    recipe = Recipe()
    parser.add_argument("--data", required=True,
                        help="labeled frames of the camera (folder, CVAT export, ...)")
    parser.add_argument("--format", choices=FORMATS, default="folder", help="layout of --data")
    parser.add_argument("--split", help="use only images named SPLIT_*")
    parser.add_argument("--remap", help="YAML {label id or name: class id or name}")
    parser.add_argument("--images", default=None,
                        help="cvat format: the frames' images, when the export holds none")
    parser.add_argument("--label-format", choices=("ids", "color"), default="ids",
                        help="folder format: id labels or colour labels")
    parser.add_argument("--init", default=None,
                        help="starting weights (.pt; default: the shipped default model)")
    parser.add_argument("--out", required=True, help="run folder (created; reruns resume)")
    parser.add_argument("--holdout", type=int, default=None,
                        help="frames held out for checkpoint choice and the report (default: "
                             f"a quarter from {MIN_FRAMES_FOR_HOLDOUT} frames up, else 0)")
    parser.add_argument("--steps", type=int, default=recipe.steps, help="optimiser steps")
    parser.add_argument("--lr", type=float, default=recipe.lr, help="peak learning rate")
    parser.add_argument("--generated-share", type=float, default=recipe.generated_share,
                        help="generated scenes per labeled sample, against forgetting")
    parser.add_argument("--freeze-bn", action="store_true",
                        help="keep the BatchNorm statistics of --init")
    parser.add_argument("--augment", choices=sorted(AUGMENT_PRESETS), default=recipe.augment)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """Return the recipe the options ask for, checking ranges."""
    if args.steps < 1:
        raise FinetuneError(f"--steps must be >= 1, got {args.steps}")
    if not args.lr > 0:
        raise FinetuneError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.generated_share <= 4:
        raise FinetuneError(f"--generated-share must be in [0, 4], got {args.generated_share}")
    return Recipe(steps=args.steps, lr=args.lr, generated_share=args.generated_share,
                  freeze_bn=args.freeze_bn, augment=args.augment)


def holdout_split(count: int, holdout: int | None) -> tuple[list[int], list[int]]:
    """Split ``count`` frames into (training, held-out) indices.

    Held-out frames are evenly spaced over the frames, so they come from the whole recording
    rather than one end of it.

    Raises:
        FinetuneError: if ``holdout`` leaves no training frame or is negative.

    """
    if holdout is None:
        holdout = round(count * HOLDOUT_FRACTION) if count >= MIN_FRAMES_FOR_HOLDOUT else 0
    if not 0 <= holdout < count:
        raise FinetuneError(f"--holdout {holdout} must be >= 0 and leave at least one of the "
                            f"{count} frames for training")
    held = evenly_spaced(range(count), holdout) if holdout else []
    return [i for i in range(count) if i not in set(held)], held


def dataset_builder(files: LabeledImages, train_idx: Sequence[int], held: Sequence[int],
                    recipe: Recipe, seed: int) -> training.DatasetBuilder:
    """Return the (training, validation) dataset builder of a fine-tuning run.

    Each epoch draws ``steps / epochs * batch_size`` samples, of which ``generated_share`` per
    labeled sample are generated scenes. Validation is the held-out frames, or the training
    frames (unaugmented) when none are held out.
    """
    samples = recipe.steps * recipe.batch_size // recipe.epochs
    generated = round(samples * recipe.generated_share / (1 + recipe.generated_share))

    def build(meta: ModelMeta, classes: ClassSet):
        cfg = AUGMENT_PRESETS[recipe.augment]
        real = FileScenes(meta, files, train_idx, True, seed, cfg, samples=samples - generated)
        train_set = real
        if generated:
            train_set = EpochConcat([real, SyntheticScenes(
                meta, generated, 0, True, seed=seed, cfg=cfg, ignore_index=classes.ignore_index)])
        return train_set, FileScenes(meta, files, held or train_idx, False)
    return build


def training_args(args: argparse.Namespace, recipe: Recipe, init: Path, out: Path
                  ) -> argparse.Namespace:
    """Return ``dice-seg train``'s options for the recipe (every other option at its default)."""
    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    argv = ["--init", str(init), "--out", str(out), "--epochs", str(recipe.epochs),
            "--batch-size", str(recipe.batch_size), "--lr", str(recipe.lr),
            "--augment", recipe.augment, "--seed", str(args.seed), "--threads",
            str(args.threads), "--device", args.device, "--format", args.format,
            "--data", args.data, *(["--images", args.images] if args.images else [])]
    if recipe.freeze_bn:
        argv.append("--freeze-bn")
    if args.quiet:
        argv.append("--quiet")
    if (out / "last.pt").is_file():
        argv += ["--resume", str(out / "last.pt")]
    return parser.parse_args(argv)


def score(model: Path, backend: str, files: LabeledImages, indices: Sequence[int]
          ) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over frames ``indices``, at the frames' own size."""
    segmenter = Segmenter(model, backend, "cpu", threads=2, estimate_dice=False)
    cm = ConfusionMatrix(files.classes.num_classes, files.classes.ignore_index)
    for index in indices:
        rgb, ids = files[index]
        cm.update(segmenter.segment(rgb).class_ids, ids)
    return cm


def report_markdown(names: Sequence[str], before: ConfusionMatrix | None,
                    after: ConfusionMatrix | None, summary: dict) -> str:
    """Return report.md: the run's facts and, with held-out frames, Dice before and after."""
    lines = [f"# Fine-tuning run `{summary['out']}`", "",
             f"- data: `{summary['data']}` ({summary['format']}), {summary['frames']} frames: "
             f"{summary['train_frames']} for training, {summary['held_out']} held out",
             f"- started from: `{summary['init']}`",
             f"- recipe: {summary['recipe']}",
             f"- training time: {summary['train_s'] / 60:.1f} min", ""]
    if before is None or after is None:
        lines += ["No frames were held out, so there is no before/after score here: check the "
                  "model with `dice-seg eval` on a labeled bag of this camera, or rerun with "
                  "`--holdout N`.", ""]
    else:
        lines += ["Dice on the held-out frames (mean over the classes present in their labels):",
                  "", "| class | before | after |", "|---|---|---|"]
        for name, b, a, present in zip(names, before.dice(), after.dice(), after.labelled()):
            if present:
                lines.append(f"| {name} | {b:.3f} | {a:.3f} |")
        lines += [f"| **mean (present)** | **{before.mean_dice_present():.3f}** | "
                  f"**{after.mean_dice_present():.3f}** |", ""]
    lines += ["Files: `model.onnx` (for the node's `model_path:=` and `dice-seg eval --model`), "
              "`model.pt` (for a later `--init`), `curves.png`, `log.csv`.",
              "The label-free estimated Dice is not calibrated for this model; run "
              "`dice-seg calibrate --model model.onnx` on labeled frames to enable it.", ""]
    return "\n".join(lines)


def finetune(args: argparse.Namespace) -> dict:
    """Run the fine-tuning job of ``args``; return its summary (also written as finetune.json)."""
    recipe = recipe_from_args(args)
    init = Path(args.init) if args.init else resource_path(DEFAULT_TORCH_MODEL)
    if not init.is_file():
        raise FinetuneError(f"--init {init}: no such checkpoint (the shipped ones are "
                            f"{resource_path(DEFAULT_TORCH_MODEL).parent}/*.pt)")
    classes = load_classes()
    files = open_dataset(args.data, args.format, classes, args.remap, args.label_format,
                         args.split, args.images)
    if len(files) > MAX_FRAMES:
        raise FinetuneError(f"{args.data}: {len(files)} frames; finetune is built for up to "
                            f"{MAX_FRAMES} (use dice-seg train for a dataset)")
    train_idx, held = holdout_split(len(files), args.holdout)
    out = Path(args.out)
    started = time.perf_counter()
    result = training.train(training_args(args, recipe, init, out),
                            dataset_builder(files, train_idx, held, recipe, args.seed))
    train_s = time.perf_counter() - started
    # Without held-out frames "best" would be the epoch that fits the training frames best.
    shutil.copyfile(out / ("best.pt" if held else "last.pt"), out / "model.pt")
    export_checkpoint(out / "model.pt", out / "model.onnx")
    before = after = None
    if held:
        before = score(init, "torch", files, held)
        after = score(out / "model.onnx", "ort", files, held)
    summary = {"out": str(out), "data": str(args.data), "format": args.format,
               "frames": len(files), "train_frames": len(train_idx), "held_out": len(held),
               "init": str(init), "recipe": recipe.__dict__, "train_s": train_s,
               "best_val_dice": result["best_dice"],
               "before_mean_dice": None if before is None else before.mean_dice_present(),
               "after_mean_dice": None if after is None else after.mean_dice_present()}
    (out / "finetune.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report_markdown(classes.names, before, after, summary))
    return summary


def run(args: argparse.Namespace) -> int:
    """Entry point of ``dice-seg finetune``."""
    summary = finetune(args)
    scores = ("" if summary["after_mean_dice"] is None else
              f"; held-out mean Dice {summary['before_mean_dice']:.3f} -> "
              f"{summary['after_mean_dice']:.3f}")
    print(f"fine-tuned on {summary['train_frames']} frames in {summary['train_s'] / 60:.1f} min"
          f"{scores}; model: {Path(summary['out']) / 'model.onnx'} (report.md beside it)")
    return 0
