"""Feed many mask/label pairs through the Dice monitor core; print memory before and after.

A week at 30 Hz is 18 million pairs; the core must not grow with them. Pairs
are tiny (8x8) so the run measures what the monitor keeps per pair, not image
buffers. The baseline is the same core measured after its first 10,000
pairs in the same run: after that, memory must stay flat. Memory is read at
checkpoints only, so a million pairs take minutes: the process's current RSS
(/proc/self/statm) and the live Python allocations (``sys.getallocatedblocks``,
a leak of Python objects shows there first). ``--tracemalloc`` adds the traced
Python heap, at about a fifth of the speed.

    python benchmarks/bench_monitor_memory.py [--pairs 1000000] [--every 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from dice_seg_ros.classes import load_classes
from dice_seg_ros.ros.monitor_core import MonitorCore
from dice_seg_ros.runtime.image_conversion import numpy_to_image

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


def current_rss_mib() -> float:
    """Return the current resident set size of this process in MiB."""
    pages = int(open("/proc/self/statm").read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory(traced: bool) -> dict[str, float]:
    """Return current RSS (MiB), live Python blocks and, if traced, the Python heap (MiB)."""
    figures = {"rss": current_rss_mib(), "blocks": float(sys.getallocatedblocks())}
    if traced:
        figures["heap"] = tracemalloc.get_traced_memory()[0] / 2**20
    return figures


def describe(figures: dict[str, float]) -> str:
    """Format memory figures for one line."""
    text = f"RSS {figures['rss']:.1f} MiB, {figures['blocks']:,.0f} Python blocks"
    if "heap" in figures:
        text += f", python heap {figures['heap']:.2f} MiB"
    return text


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000, help="pairs per checkpoint")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    args = parser.parse_args()
    classes = load_classes()
    rng = np.random.default_rng(0)
    pool = [messages(i, rng, classes) for i in range(64)]
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "per_frame.csv"
        core = MonitorCore(classes, rows_path=rows)
        if args.tracemalloc:
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
                baseline = memory(args.tracemalloc)
                print(f"after {WARMUP:,} pairs: {describe(baseline)}", flush=True)
            elif (index + 1) % args.every == 0:
                rate = (index + 1) / (time.perf_counter() - start)
                print(f"after {index + 1:,} pairs: {describe(memory(args.tracemalloc))}; "
                      f"{rate:,.0f} pairs/s", flush=True)
        seconds = time.perf_counter() - start
        current = memory(args.tracemalloc)
        core.rows.flush()
        print(f"after {args.pairs:,} pairs: {describe(current)}, peak RSS {rss_mib():.1f} MiB; "
              f"per_frame.csv {rows.stat().st_size / 2**20:.1f} MiB on disk; "
              f"{core.scored:,} scored, {len(core.tracker.frames):,} rows in memory; "
              f"{args.pairs / seconds:,.0f} pairs/s")
        if baseline:
            print(f"growth after the first {WARMUP:,} pairs: RSS "
                  f"{current['rss'] - baseline['rss']:+.1f} MiB, Python blocks "
                  f"{current['blocks'] - baseline['blocks']:+,.0f}"
                  + (f", heap ratio {current['heap'] / baseline['heap']:.3f}"
                     if args.tracemalloc else ""))
        core.close()


if __name__ == "__main__":
    main()
