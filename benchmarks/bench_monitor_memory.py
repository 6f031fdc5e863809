"""Feed many mask/label pairs through the Dice monitor core; print memory before and after.

A week at 30 Hz is 18 million pairs; the core must not grow with them. Pairs
are tiny (8x8) so the run measures what the monitor keeps per pair, not image
buffers. The baseline is the same core measured after its first 10,000
pairs in the same run: after that, memory must stay flat.

    python benchmarks/bench_monitor_memory.py [--pairs 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from dice_seg_ros.classes import load_classes
from dice_seg_ros.image_conversion import numpy_to_image
from dice_seg_ros.monitor_core import MonitorCore

TS = get_typestore(Stores.ROS2_JAZZY)
WARMUP = 10_000


def messages(index: int, rng: np.random.Generator, classes) -> tuple:
    """Return a mask and a label message stamped ``index`` frames at 30 Hz."""
    header = TS.types["std_msgs/msg/Header"](
        stamp=TS.types["builtin_interfaces/msg/Time"](sec=index // 30,
                                                      nanosec=(index % 30) * 33_333_333),
        frame_id="camera")
    target = rng.integers(0, classes.num_classes, (8, 8), dtype=np.uint8)
    image = TS.types["sensor_msgs/msg/Image"]
    return (numpy_to_image(target, "mono8", header, image),
            numpy_to_image(target, "mono8", header, image))


def rss_mib() -> float:
    """Return the peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    args = parser.parse_args()
    classes = load_classes()
    rng = np.random.default_rng(0)
    pool = [messages(i, rng, classes) for i in range(64)]
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "per_frame.csv"
        core = MonitorCore(classes, rows_path=rows)
        tracemalloc.start()
        start = time.perf_counter()
        baseline = None
        for index in range(args.pairs):
            mask, label = pool[index % len(pool)]
            sec, nanosec = index // 30, (index % 30) * 33_333_333
            for msg in (mask, label):
                msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            core.add("mask", mask)
            core.add("labels", label)
            if index + 1 == WARMUP:
                baseline = tracemalloc.get_traced_memory()[0]
                print(f"after {WARMUP:,} pairs: python heap {baseline / 2**20:.2f} MiB, "
                      f"peak RSS {rss_mib():.1f} MiB")
        seconds = time.perf_counter() - start
        current = tracemalloc.get_traced_memory()[0]
        core.rows.flush()
        print(f"after {args.pairs:,} pairs: python heap {current / 2**20:.2f} MiB, "
              f"peak RSS {rss_mib():.1f} MiB; per_frame.csv {rows.stat().st_size / 2**20:.1f} MiB"
              f" on disk; {core.scored:,} scored, {len(core.tracker.frames):,} rows in memory; "
              f"{args.pairs / seconds:,.0f} pairs/s")
        if baseline:
            print(f"heap growth ratio (after / after {WARMUP:,}): {current / baseline:.3f}")
        core.close()


if __name__ == "__main__":
    main()
