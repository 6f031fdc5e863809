"""Many cameras through the real nodes: one multi-camera node vs one node per camera.

For 1, 2 and 4 cameras, publishes rgb8 frames at 30 Hz on ``/camK/image_raw``
(best effort, depth 1, as the node subscribes; stamped with the wall clock)
and runs, one setup at a time, as processes over real rclpy and Fast DDS:
- one: a single ``segmentation_node`` with ``image_topics`` listing every
  camera (one batch per cycle);
- separate: one ``segmentation_node`` per camera (``image_topics: [/camK/image_raw]``);
both named ``dice_seg``, so every camera's mask is ``/camK/dice_seg/mask``.
Prints, per camera, masks/s and latency (mask arrival - frame stamp: transport
in, queueing, segmentation, transport out; mean, p95, max ms), then the total
masks/s, the nodes' CPU ms per mask, and the throughput ratio one / separate
measured in the same run. Needs rclpy (the ros-test extra) and, for stable
figures, an otherwise idle machine.

Run: ``python benchmarks/bench_multicam_nodes.py [--seconds 8] [--width 640 --height 480]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from bench_node_cpu import cpu_seconds, segmentation_node_command

CAMERAS = (1, 2, 4)
RATE_HZ = 30.0


def start_node(topics: list[str], model: str | None) -> subprocess.Popen:
    """Start one ``segmentation_node`` process named dice_seg serving ``topics``."""
    params = ["-p", "device:=cpu", "-p", f"image_topics:={topics!r}"]
    if model:
        params += ["-p", f"model_path:={model}"]
    return subprocess.Popen(segmentation_node_command()
                            + ["--ros-args", "-r", "__node:=dice_seg", *params],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_case(cameras: int, separate: bool, args: argparse.Namespace) -> dict:
    """Run one setup; return per-camera latencies (ms), masks, CPU seconds and time."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from dice_seg_ros.data.synthetic import generate_scene

    topics = [f"/cam{k}/image_raw" for k in range(cameras)]
    procs = ([start_node([t], args.model) for t in topics] if separate
             else [start_node(topics, args.model)])
    node = rclpy.create_node(f"bench_multicam_{cameras}_{int(separate)}")
    latencies: dict[int, list[float]] = {k: [] for k in range(cameras)}

    def on_mask(camera: int):
        def record(msg: Image) -> None:
            stamp = msg.header.stamp.sec * 1e9 + msg.header.stamp.nanosec
            latencies[camera].append((time.time_ns() - stamp) / 1e6)
        return record

    publishers = [node.create_publisher(Image, t, qos_profile_sensor_data) for t in topics]
    for k in range(cameras):
        node.create_subscription(Image, f"/cam{k}/dice_seg/mask", on_mask(k),
                                 QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    frames = [Image(height=args.height, width=args.width, encoding="rgb8", step=3 * args.width,
                    data=generate_scene(10 + k, args.width, args.height)[0].tobytes())
              for k in range(cameras)]

    def publish_all() -> None:
        now = time.time_ns()
        for publisher, frame in zip(publishers, frames):
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(now, 1_000_000_000)
            publisher.publish(frame)

    try:
        deadline = time.monotonic() + 90.0
        while not all(latencies.values()):  # start-up: model load, discovery
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                errors = "".join(p.stderr.read()[-1500:] for p in procs if p.poll() is not None)
                raise RuntimeError(f"nodes did not start: {errors}")
            publish_all()
            rclpy.spin_once(node, timeout_sec=1.0 / RATE_HZ)
        for values in latencies.values():
            values.clear()
        cpu_start = sum(cpu_seconds(p.pid) for p in procs)
        sent, start = 0, time.monotonic()
        while time.monotonic() - start < args.seconds:
            publish_all()
            sent += 1
            next_frame = start + sent / RATE_HZ
            while time.monotonic() < next_frame:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_frame - time.monotonic()))
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_start
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        node.destroy_node()
    return {"latencies": latencies, "cpu_s": cpu, "seconds": args.seconds, "sent": sent}


def report(cameras: int, label: str, figures: dict) -> float:
    """Print one setup's per-camera and total figures; return total masks per second."""
    total = 0
    for camera, values in figures["latencies"].items():
        total += len(values)
        ordered = sorted(values) or [float("nan")]
        print(f"  {label:>8} cam{camera}: {len(values) / figures['seconds']:5.1f} masks/s of "
              f"{RATE_HZ:g}, latency mean {statistics.fmean(ordered):6.1f} ms, "
              f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:6.1f}, max {ordered[-1]:6.1f}")
    rate = total / figures["seconds"]
    print(f"  {label:>8} total: {rate:6.1f} masks/s, nodes' CPU "
          f"{figures['cpu_s'] * 1000.0 / max(total, 1):5.1f} ms per mask")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per setup")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--cameras", type=int, nargs="+", default=list(CAMERAS))
    parser.add_argument("--model", default=None, help="default: the shipped model")
    args = parser.parse_args()
    import rclpy

    print(f"{args.width}x{args.height} rgb8 at {RATE_HZ:g} Hz per camera, {args.seconds:g} s "
          f"per setup, {os.cpu_count()} CPUs")
    rclpy.init()
    try:
        for cameras in args.cameras:
            print(f"{cameras} camera(s):")
            one = report(cameras, "one", run_case(cameras, separate=False, args=args))
            separate = report(cameras, "separate", run_case(cameras, separate=True, args=args))
            print(f"  throughput one node / {cameras} node(s) = {one / max(separate, 1e-9):.2f}")
    finally:
        rclpy.shutdown()


if __name__ == "__main__":
    main()
