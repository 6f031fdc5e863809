"""Per-frame cost of the traversability grid against the segmentation it follows.

The grid's pixel-to-cell map is built once per camera geometry; a frame costs one gather and
one ``np.bincount`` over its mask. This times that per-frame step against
``Segmenter.segment`` of the shipped default model on the same frame, interleaved round by
round so both see the same machine load, at 640x480 and 1280x720 (camera 1 m up, pitched
0.35 rad down, 10 m x 10 m grid at 0.1 m).

Run: ``python benchmarks/bench_traversability.py [--rounds 50]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.traversability import CameraPose, GridSpec, GroundProjection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import interleaved_ms  # noqa: E402

SIZES = ((640, 480), (1280, 720))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    args = parser.parse_args()
    segmenter = Segmenter(device="cpu", threads=args.threads)
    costs = load_classes().cost_table()
    print("| frame | grid build (once) ms | grid ms/frame | segment ms/frame | grid / segment |")
    print("|---|---|---|---|---|")
    for width, height in SIZES:
        rgb, _ = generate_scene(7, width, height)
        focal = (width / 2) / math.tan(math.radians(35))  # 70 degree horizontal field of view
        k = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        start = time.perf_counter()
        projection = GroundProjection(k, CameraPose(1.0, 0.35).matrix(), (width, height),
                                      GridSpec())
        build_ms = (time.perf_counter() - start) * 1000
        mask = segmenter.segment(rgb).class_ids
        timings = interleaved_ms({"grid": lambda: projection.costs(mask, costs),
                                  "segment": lambda: segmenter.segment(rgb)}, args.rounds)
        grid_ms, segment_ms = timings["grid"][0], timings["segment"][0]
        print(f"| {width}x{height} | {build_ms:.0f} | {grid_ms:.2f} | {segment_ms:.1f} | "
              f"{grid_ms / segment_ms:.3f} |")


if __name__ == "__main__":
    main()
