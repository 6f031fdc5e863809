"""``dice-seg demo``: make a small labeled bag, evaluate the shipped model on it, report.

A one-command tour of the offline pipeline (make-bag -> eval) that needs no
ROS installation and no data download: generated terrain scenes are written as
a rosbag2 (MCAP), replayed through the Segmenter, and scored with Dice/IoU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dice_seg_ros.bags.bag_io import remove_old_bag
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag, print_result
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.runtime.inference import Segmenter, add_model_arguments

DEFAULT_OUT = Path("dice_seg_demo")
# Far from the small seeds scripts and tests use, so the demo scenes are unseen ones.
DEMO_SEED = 900_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg demo`` options."""
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default ./{DEFAULT_OUT})")
    parser.add_argument("--frames", type=int, default=30, help="frames (default 30)")
    parser.add_argument("--width", type=int, default=640, help="pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="pixels (default 480)")
    add_model_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=4,
                        help="images per network call (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Write the bag into ``--out/bag``, evaluate into ``--out/report``, print the results."""
    segmenter = Segmenter(args.model, backend=args.backend, device=args.device,
                          threads=args.threads)
    remove_old_bag(args.out / "bag")
    bag = write_synthetic_bag(args.out / "bag", args.frames, args.width,
                              args.height, seed=DEMO_SEED, progress=not args.no_progress)
    print(f"labeled bag: {bag} ({args.frames} generated {args.width}x{args.height} frames; "
          f"{IMAGE_TOPIC}, {LABEL_TOPIC})")
    result = evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, args.out / "report", segmenter,
                          EvalOptions(batch_size=args.batch_size,
                                      progress=not args.no_progress))
    code = print_result(result)
    print("evaluate your own recording: dice-seg eval --bag BAG --image-topic TOPIC "
          "--label-topic TOPIC --out DIR")
    return code
