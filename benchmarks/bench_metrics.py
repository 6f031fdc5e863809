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

Run: ``python benchmarks/bench_metrics.py [--repeats N]``
"""

import argparse
import timeit

import numpy as np

from dice_seg_ros.metrics import DiceTracker, confusion_matrix, dice_per_class

WIDTH, HEIGHT, CLASSES = 1920, 1080, 20


def median_ms(func, repeats: int) -> float:
    """Median wall time of ``func()`` in milliseconds over ``repeats`` calls."""
    func()
    return float(np.median(timeit.repeat(func, number=1, repeat=repeats))) * 1e3


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
    floor = median_ms(lambda: pred.sum(dtype=np.uint64) + target.sum(dtype=np.uint64),
                      repeats)
    bandwidth = median_ms(lambda: (pred.max(), target.max()), repeats)
    naive = median_ms(lambda: np.bincount(target.astype(np.int64).ravel() * CLASSES
                                          + pred.ravel(), minlength=CLASSES * CLASSES),
                      repeats)
    matrix = median_ms(lambda: confusion_matrix(pred, target, CLASSES, 255), repeats)
    dice = median_ms(lambda: dice_per_class(pred, target, CLASSES, 255), repeats)
    tracker = DiceTracker(CLASSES, 255)
    tracked = median_ms(lambda: tracker.update(pred, target), repeats)
    print(f"\n{name} masks {WIDTH}x{HEIGHT}, {CLASSES} classes (median of {repeats}):")
    print(f"  floor: sum both masks (uint64)      {floor:7.2f} ms")
    print(f"  bandwidth: max of both masks        {bandwidth:7.2f} ms")
    print(f"  naive int64 bincount baseline       {naive:7.2f} ms  "
          f"({naive / floor:.2f}x floor)")
    print(f"  confusion_matrix                    {matrix:7.2f} ms  "
          f"({matrix / floor:.2f}x floor)")
    print(f"  dice_per_class                      {dice:7.2f} ms  "
          f"({dice / floor:.2f}x floor, {naive / dice:.2f}x faster than naive)")
    print(f"  DiceTracker.update (dice+iou+EMA)   {tracked:7.2f} ms  "
          f"({tracked / floor:.2f}x floor)")


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
