"""Draw the README's picture: a real labeled frame, the model's mask, its overlay, the label.

Run: ``python scripts/readme_picture.py --data ../shared/realdata/ycor --format ycor
--split valid --index 90 --out docs/readme_picture.png``. The frame comes from the dataset given
(YCOR in the README: research use, terms unverified), never from the package itself.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.datasets import FORMATS, open_dataset
from dice_seg_ros.runtime.image_conversion import colorize, overlay
from dice_seg_ros.runtime.inference import Segmenter


def panel(images: list[np.ndarray], titles: list[str], width: int) -> np.ndarray:
    """Side-by-side RGB tiles ``width`` pixels wide each, a caption above each."""
    tiles = []
    for image, title in zip(images, titles):
        height = round(image.shape[0] * width / image.shape[1])
        tile = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        caption = np.full((28, width, 3), 255, np.uint8)
        cv2.putText(caption, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
        tiles.append(np.vstack([caption, tile]))
    return np.hstack(tiles)


def main() -> None:
    """Parse the options, segment the frame, write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labeled dataset folder")
    parser.add_argument("--format", choices=FORMATS, default="ycor")
    parser.add_argument("--split", default=None, help="images named SPLIT_* only")
    parser.add_argument("--index", type=int, default=0, help="which frame of the dataset")
    parser.add_argument("--model", default=None, help="model (default: the shipped default)")
    parser.add_argument("--width", type=int, default=320, help="tile width in pixels")
    parser.add_argument("--out", default="docs/readme_picture.png")
    args = parser.parse_args()
    classes = load_classes()
    rgb, labels = open_dataset(args.data, args.format, classes, split=args.split)[args.index]
    segmenter = Segmenter(args.model) if args.model else Segmenter()
    seg = segmenter.segment(rgb)
    palette = classes.palette()
    mask = colorize(seg.class_ids, palette)
    estimate = ("" if seg.estimated_dice is None
                else f" (estimated Dice {seg.estimated_dice:.2f})")
    picture = panel([rgb, mask, overlay(rgb, mask, 0.5), colorize(labels, palette)],
                    ["camera frame", "mask" + estimate, "overlay", "label (ground truth)"],
                    args.width)
    cv2.imwrite(args.out, picture[..., ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
