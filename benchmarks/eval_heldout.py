"""Held-out per-class Dice and IoU of a model on generated scenes never used in training.

Scenes come from seeds ``TEST_SEED_BASE + i`` (training draws below
``VAL_SEED_BASE``), at camera resolution (default 640x480), and go through
the same ``Segmenter`` as the ROS node: resize to the network input, infer,
resize the ids back. Scores are pooled over all frames (one confusion matrix),
and printed as ``eval_real.py`` prints them (classes absent from the labels marked).

Run: ``python benchmarks/eval_heldout.py [--model models/terrain_seg.onnx] [--scenes 200]``
"""

import argparse

from eval_real import markdown_table

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.data.torch_dataset import TEST_SEED_BASE
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.metrics import ConfusionMatrix


def heldout_confusion(segmenter: Segmenter, scenes: int, width: int, height: int,
                      seed_base: int = TEST_SEED_BASE) -> ConfusionMatrix:
    """Pool a confusion matrix of ``segmenter`` over ``scenes`` generated frames."""
    classes = load_classes()
    cm = ConfusionMatrix(classes.num_classes, classes.ignore_index)
    for i in range(scenes):
        rgb, ids = generate_scene(seed_base + i, width, height)
        cm.update(segmenter.segment(rgb).class_ids, ids)
    return cm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=".onnx or .pt (default: shipped model)")
    parser.add_argument("--backend", choices=("ort", "torch"), default="ort")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    segmenter = Segmenter(args.model, args.backend, "cpu", threads=args.threads)
    cm = heldout_confusion(segmenter, args.scenes, args.width, args.height)
    print(f"{segmenter.source}: {args.scenes} held-out scenes (seeds {TEST_SEED_BASE}+) at "
          f"{args.width}x{args.height}")
    print(markdown_table(cm, load_classes().names))


if __name__ == "__main__":
    main()
