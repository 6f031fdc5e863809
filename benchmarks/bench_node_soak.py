"""Soak: RSS and latency of segmentation_node and dice_monitor_node over many frames.

Starts both nodes as processes (the console scripts, real rclpy and Fast DDS):
``segmentation_node`` on ``/soak/image`` and ``dice_monitor_node`` pairing its
``/soak/dice_seg/mask`` with ``/soak/labels``. Frames go one at a time
(frame k and its label, then wait for the monitor's ``mean_dice`` of pair k),
so every frame is segmented and scored and nothing queues. Every ``--every``
frames it prints each node's RSS (VmRSS, MiB) and the latency over the last
interval: segmentation = mask arrival - frame publish, monitor = mean_dice
arrival - mask arrival (ms, mean and p99). At the end: RSS growth per 10,000
frames from the first checkpoint to the last (the first interval is warm-up),
and frames that timed out. Needs rclpy (the ros-test extra).

Run: ``python benchmarks/bench_node_soak.py [--frames 100000] [--every 10000]``
(quick: ``--frames 300 --every 100``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAMESPACE = "/soak"
PERIOD_NS = 33_333_333
TIMEOUT_S = 5.0


def rss_mib(pid: int) -> float:
    """Return the resident set size of process ``pid`` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def console_script(name: str) -> list[str]:
    """Return the command of an installed console script next to this Python."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise RuntimeError(f"console script {name} not installed (pip install -e .)")
    return [path]


def start_nodes() -> dict[str, subprocess.Popen]:
    """Start segmentation_node and dice_monitor_node in NAMESPACE."""
    common = ["--ros-args", "-r", f"__ns:={NAMESPACE}"]
    seg = console_script("segmentation_node") + common + [
        "-r", "__node:=dice_seg", "-p", "device:=cpu", "-p", "qos_reliability:=reliable",
        "-p", "qos_depth:=5", "-p", "publish_color:=false", "-p", "publish_overlay:=false"]
    monitor = console_script("dice_monitor_node") + common + [
        "-r", f"mask:={NAMESPACE}/dice_seg/mask", "-r", f"labels:={NAMESPACE}/labels",
        "-p", "report_dir:=''", "-p", "sync_queue_size:=5"]
    return {name: subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
            for name, cmd in (("segmentation_node", seg), ("dice_monitor_node", monitor))}


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def soak(frames: int, every: int, width: int, height: int) -> list[dict]:
    """Run the soak; return one checkpoint dict per ``every`` frames."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32

    from dice_seg_ros.data.synthetic import generate_scene

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    procs = start_nodes()
    node = rclpy.create_node("soak_driver")
    images = node.create_publisher(Image, f"{NAMESPACE}/image", reliable)
    labels = node.create_publisher(Image, f"{NAMESPACE}/labels", reliable)
    arrivals: dict[str, list[float]] = {"mask": [], "mean_dice": []}
    node.create_subscription(Image, f"{NAMESPACE}/dice_seg/mask",
                             lambda msg: arrivals["mask"].append(time.perf_counter()), reliable)
    node.create_subscription(Float32, f"{NAMESPACE}/dice_monitor_node/mean_dice",
                             lambda msg: arrivals["mean_dice"].append(time.perf_counter()),
                             reliable)
    rgb, label = generate_scene(1, width, height)
    frame = Image(height=height, width=width, encoding="rgb8", step=3 * width,
                  data=rgb.tobytes())
    truth = Image(height=height, width=width, encoding="mono8", step=width,
                  data=label.astype("uint8").tobytes())

    def spin_until(condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
        return condition()

    checkpoints, seg_ms, monitor_ms, timeouts = [], [], [], 0
    try:
        started = spin_until(lambda: images.get_subscription_count()
                             and labels.get_subscription_count()
                             and node.count_publishers(f"{NAMESPACE}/dice_seg/mask")
                             or any(p.poll() is not None for p in procs.values()), 90.0)
        if not started or any(p.poll() is not None for p in procs.values()):
            raise RuntimeError("nodes did not start: " + "".join(
                p.stderr.read()[-1500:] for p in procs.values() if p.poll() is not None))
        time.sleep(1.0)  # the monitor's mask subscription matches the node's publisher
        start = time.perf_counter()
        for index in range(frames):
            for msg in (frame, truth):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
                    (index + 1) * PERIOD_NS, 1_000_000_000)
            arrivals["mask"].clear()
            arrivals["mean_dice"].clear()
            sent = time.perf_counter()
            images.publish(frame)
            labels.publish(truth)
            # The mask and the monitor's mean_dice reach this node on separate
            # connections, so under load mean_dice can come first: wait for both.
            if spin_until(lambda: arrivals["mean_dice"] and arrivals["mask"], TIMEOUT_S):
                seg_ms.append((arrivals["mask"][0] - sent) * 1000.0)
                monitor_ms.append((arrivals["mean_dice"][0] - arrivals["mask"][0]) * 1000.0)
            else:
                timeouts += 1
            if (index + 1) % every == 0:
                checkpoints.append({
                    "frames": index + 1, "seconds": time.perf_counter() - start,
                    **{f"rss_{name}": rss_mib(p.pid) for name, p in procs.items()},
                    "seg_mean": statistics.fmean(seg_ms) if seg_ms else float("nan"),
                    "seg_p99": percentile(seg_ms, 0.99),
                    "monitor_mean": statistics.fmean(monitor_ms) if monitor_ms
                    else float("nan"),
                    "monitor_p99": percentile(monitor_ms, 0.99), "timeouts": timeouts})
                seg_ms, monitor_ms = [], []
                print_checkpoint(checkpoints[-1])
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=10)
        node.destroy_node()
    return checkpoints


def print_checkpoint(row: dict) -> None:
    """Print one checkpoint as a markdown table row."""
    print(f"| {row['frames']:,} | {row['seconds']:.0f} | {row['rss_segmentation_node']:.1f} | "
          f"{row['rss_dice_monitor_node']:.1f} | {row['seg_mean']:.1f} / {row['seg_p99']:.1f} | "
          f"{row['monitor_mean']:.1f} / {row['monitor_p99']:.1f} | {row['timeouts']} |",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000, help="frames per checkpoint")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    args = parser.parse_args()
    if args.frames < 2 * args.every:
        parser.error("--frames must be at least twice --every (warm-up + one interval)")
    import rclpy

    print(f"{args.frames:,} frames of {args.width}x{args.height} rgb8, one at a time, "
          "through segmentation_node and dice_monitor_node")
    print("| frames | s | segmentation_node RSS MiB | dice_monitor_node RSS MiB "
          "| segmentation ms mean / p99 | monitor ms mean / p99 | timeouts |")
    print("|---|---|---|---|---|---|---|")
    rclpy.init()
    try:
        rows = soak(args.frames, args.every, args.width, args.height)
    finally:
        rclpy.shutdown()
    first, last = rows[0], rows[-1]
    per = 10_000 / (last["frames"] - first["frames"])
    for name in ("segmentation_node", "dice_monitor_node"):
        growth = (last[f"rss_{name}"] - first[f"rss_{name}"]) * per
        print(f"{name}: RSS {first[f'rss_{name}']:.1f} -> {last[f'rss_{name}']:.1f} MiB "
              f"from frame {first['frames']:,} to {last['frames']:,}: "
              f"{growth:+.2f} MiB per 10,000 frames")
    print(f"timeouts: {last['timeouts']} of {args.frames:,} frames")


if __name__ == "__main__":
    main()
