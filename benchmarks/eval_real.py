"""Per-class Dice and IoU of a model on a real labeled dataset folder (e.g. YCOR valid).

Frames go through the same ``Segmenter`` as the ROS node (resize to the network
input, infer, ids back to the frame size) and are scored at full resolution,
pooled over all frames (one confusion matrix). Classes absent from the labels
are marked and kept out of the "mean over present classes".

Run: ``python benchmarks/eval_real.py --data ../shared/realdata/ycor --format ycor
--split valid [--model models/terrain_seg.onnx]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.datasets import FORMATS, LabeledImages, open_dataset
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.metrics import ConfusionMatrix


def real_confusion(segmenter: Segmenter, files: LabeledImages, quiet: bool = False
                   ) -> tuple[ConfusionMatrix, float]:
    """Pool a confusion matrix of ``segmenter`` over ``files``; also mean ms per frame."""
    cm = ConfusionMatrix(files.classes.num_classes, files.classes.ignore_index)
    seconds = 0.0
    for index in tqdm(range(len(files)), desc="frames", disable=quiet, leave=False):
        rgb, ids = files[index]
        start = time.perf_counter()
        pred = segmenter.segment(rgb).class_ids
        seconds += time.perf_counter() - start
        cm.update(pred, ids)
    return cm, 1000.0 * seconds / len(files)


def save_study_report(fig, table: str, report: str | Path) -> None:
    """Print a study's Markdown table, save it (REPORT.table.md) and its figure (REPORT.png)."""
    print(table)
    fig.tight_layout()
    fig.savefig(Path(report).with_suffix(".png"), dpi=100)
    Path(report).with_suffix(".table.md").write_text(table + "\n")


def markdown_table(cm: ConfusionMatrix, names: tuple[str, ...]) -> str:
    """Per-class Dice/IoU table with label-pixel shares and both means."""
    labelled = cm.matrix.sum(axis=1)
    share = 100.0 * labelled / max(int(labelled.sum()), 1)
    lines = ["| class | Dice | IoU | % of label pixels |", "|---|---|---|---|"]
    for name, dice, iou, pct, present in zip(names, cm.dice(), cm.iou(), share,
                                             cm.labelled()):
        marker = "" if present else " (absent)"
        lines.append(f"| {name}{marker} | {dice:.3f} | {iou:.3f} | {pct:.1f} |")
    lines.append(f"| **mean over present classes** | **{cm.mean_dice_present():.3f}** | | |")
    lines.append(f"| mean over all classes | {cm.mean_dice():.3f} | {cm.mean_iou():.3f} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--format", choices=FORMATS, default="ycor")
    parser.add_argument("--split", default=None, help="images named SPLIT_* only")
    parser.add_argument("--remap", default=None, help="remap YAML instead of the format's")
    parser.add_argument("--model", default=None, help=".onnx or .pt (default: shipped model)")
    parser.add_argument("--backend", choices=("ort", "torch"), default=None,
                        help="default: torch for .pt, ort otherwise")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    backend = args.backend or ("torch" if str(args.model).endswith(".pt") else "ort")
    classes = load_classes()
    files = open_dataset(args.data, args.format, classes, args.remap, split=args.split)
    segmenter = Segmenter(args.model, backend, "cpu", threads=args.threads)
    cm, ms = real_confusion(segmenter, files)
    print(f"{segmenter.source} on {args.data} ({args.format}"
          f"{', split ' + args.split if args.split else ''}): {len(files)} frames, "
          f"{ms:.1f} ms/frame through Segmenter ({backend}, {args.threads} threads)")
    print(markdown_table(cm, classes.names))


if __name__ == "__main__":
    main()
