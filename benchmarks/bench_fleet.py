"""Fleet evaluation throughput: 1 worker, N worker processes, Ray local with N CPUs.

Writes ``--bags`` generated labeled bags of ``--frames`` 640x480 frames each,
then scores them all with :func:`~dice_seg_ros.bags.fleet.evaluate_fleet` three
ways (``force``: nothing reused) and prints wall time, frames per second and
the ratio to 1 worker (the baseline, measured in the same run). Each worker
runs inference on one thread, so the ratios show the parallelism, not a
thread-count difference. Ray's figure includes starting the embedded Ray.
The per-class scores of the three runs are checked to be identical.

Run: ``python benchmarks/bench_fleet.py [--bags 6] [--frames 20] [--workers 2]``
"""

import argparse
import tempfile
import time
from pathlib import Path

from dice_seg_ros.bags.fleet import FleetOptions, evaluate_fleet, find_bags
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=6)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    options = FleetOptions(IMAGE_TOPIC, LABEL_TOPIC, str(args.model) if args.model else None,
                           threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in range(args.bags):
            write_synthetic_bag(root / "bags" / f"drive{k:02d}", frames=args.frames,
                                seed=1000 * k, progress=False)
        bags = find_bags(root / "bags")
        frames = args.bags * args.frames
        runs = {"1 worker": {"workers": 1},
                f"{args.workers} processes": {"workers": args.workers},
                f"Ray local, {args.workers} CPUs": {"workers": args.workers, "ray": "local"}}
        seconds, dice = {}, {}
        for name, how in runs.items():
            start = time.perf_counter()
            run = evaluate_fleet(bags, options, root / "out", force=True, progress=False, **how)
            seconds[name] = time.perf_counter() - start
            dice[name] = run.summary["dice"]
    print(f"{args.bags} bags x {args.frames} frames of 640x480, 1 inference thread per worker")
    baseline = seconds["1 worker"]
    for name, wall in seconds.items():
        print(f"  {name:<22} {wall:6.1f} s  {frames / wall:6.1f} frames/s  "
              f"speed-up {baseline / wall:.2f}x")
    same = all(d == dice["1 worker"] for d in dice.values())
    print(f"identical per-class Dice in all runs: {same}")


if __name__ == "__main__":
    main()
