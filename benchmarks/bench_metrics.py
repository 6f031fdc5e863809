"""Per-frame Dice of two 1920x1080 uint8 masks (20 classes) against a memory-read floor.

Floor: ``a.sum(dtype=uint64) + b.sum(dtype=uint64)``, one widening add per pixel
of both masks.  Any per-pixel numpy pass that combines the two ids has to do
at least that much work, so it is the fair floor for a numpy confusion matrix.
For scale the script also prints a pure-bandwidth pass (``max`` of each mask,
SIMD on uint8), which no counting loop can approach.

Baseline: the usual ``np.bincount(target.astype(int64) * C + pred)`` (no range
checks), measured in the same run.  Goal: ``dice_per_class`` within 3x of the
floor.  Two data sets: uniform random ids (no spatial structure) and blocky
"scene-like" masks where the prediction agrees with the target on ~90% of pixels
(long runs of one bin, the case real masks present).

Timing: every candidate runs once per round, round-robin, so the floor and
the candidates see the same load on a shared machine; the script prints the
median (and, in brackets, the minimum) over rounds and ratios of each.

Run: ``python benchmarks/bench_metrics.py [--repeats N]``
"""

import argparse
import gc
import time
from collections.abc import Callable

import numpy as np

from dice_seg_ros.runtime.metrics import DiceTracker, confusion_matrix, dice_per_class

WIDTH, HEIGHT, CLASSES = 1920, 1080, 20


def interleaved_ms(funcs: dict[str, Callable[[], object]],
                   repeats: int) -> dict[str, tuple[float, float]]:
    """Time each function once per round, ``repeats`` rounds; return {name: (median, min)} ms."""
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for func in funcs.values():
        func()  # warm-up: first-call allocations and imports are not what we measure
    gc.disable()  # as timeit does: a collection would land on whichever call triggers it
    try:
        for _ in range(repeats):
            for name, func in funcs.items():
                start = time.perf_counter()
                func()
                samples[name].append((time.perf_counter() - start) * 1e3)
    finally:
        gc.enable()
    return {name: (float(np.median(v)), float(np.min(v))) for name, v in samples.items()}


def print_table(title: str, timings: dict[str, tuple[float, float]], floor: str,
                baseline: str | None = None) -> None:
    """Print median [min] ms per entry with its ratio to ``floor`` (and to ``baseline``)."""
    print(f"\n{title}")
    floor_med, floor_min = timings[floor]
    for name, (med, low) in timings.items():
        line = (f"  {name:46s} {med:8.3f} ms [{low:8.3f}]  "
                f"{med / floor_med:6.2f}x floor [{low / floor_min:5.2f}x]")
        if baseline is not None and list(timings).index(name) > list(timings).index(baseline):
            line += f"  {timings[baseline][0] / med:5.2f}x faster than {baseline}"
        print(line)


def random_masks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return uniform random (pred, target) uint8 masks."""
    shape = (HEIGHT, WIDTH)
    return (rng.integers(0, CLASSES, shape, dtype=np.uint8),
            rng.integers(0, CLASSES, shape, dtype=np.uint8))


def scene_masks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return blocky (pred, target) masks: 60x60-pixel regions, 10% of pixels wrong."""
    blocks = rng.integers(0, CLASSES, (HEIGHT // 60, WIDTH // 60), dtype=np.uint8)
    target = np.repeat(np.repeat(blocks, 60, axis=0), 60, axis=1)
    pred = target.copy()
    wrong = rng.random(target.shape) < 0.1
    pred[wrong] = rng.integers(0, CLASSES, int(wrong.sum()), dtype=np.uint8)
    return pred, target


def bench(name: str, pred: np.ndarray, target: np.ndarray, repeats: int) -> None:
    """Print timings and ratios for one pair of masks."""
    tracker = DiceTracker(CLASSES, 255)
    timings = interleaved_ms({
        "floor: sum both masks (uint64)":
            lambda: pred.sum(dtype=np.uint64) + target.sum(dtype=np.uint64),
        "bandwidth: max of both masks": lambda: (pred.max(), target.max()),
        "naive int64 bincount":
            lambda: np.bincount(target.astype(np.int64).ravel() * CLASSES + pred.ravel(),
                                minlength=CLASSES * CLASSES),
        "confusion_matrix": lambda: confusion_matrix(pred, target, CLASSES, 255),
        "dice_per_class": lambda: dice_per_class(pred, target, CLASSES, 255),
        "DiceTracker.update (dice, iou, window, EMA)": lambda: tracker.update(pred, target),
    }, repeats)
    print_table(f"{name} masks {WIDTH}x{HEIGHT}, {CLASSES} classes, median [min] of "
                f"{repeats} rounds:", timings, "floor: sum both masks (uint64)",
                "naive int64 bincount")


def main() -> None:
    """Run both data sets and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bench("uniform random", *random_masks(rng), args.repeats)
    bench("scene-like", *scene_masks(rng), args.repeats)


if __name__ == "__main__":
    main()
