"""CPU per frame of the real ``segmentation_node`` against a floor, over real rclpy.

Publishes rgb8 camera frames at 30 Hz on ``/image`` (best effort, depth 1, as
the node subscribes) and measures the process CPU time (user + system, from
/proc) per processed frame of, each in its own process and one at a time:
- ``segmentation_node`` (the console script; mask only, then with
  ``~/mask_color`` and ``~/overlay`` subscribed);
- a minimal rclpy relay: subscribe the image, publish a mono8 image of the
  same size (what any node that answers each frame costs);
- ``Segmenter.segment`` back to back on the decoded frame (the network and
  its pre/post-processing alone), in this process before ROS starts.
Prints node / (relay + Segmenter), goal <= 1.5 at 640x480, and the same at
1280x720. Needs rclpy (``pip install 'ros-jazzy-rclpy[fastrtps]'
ros-jazzy-sensor-msgs ...``, scripts/setup.sh) and, for stable figures,
an otherwise idle machine.

Run: ``python benchmarks/bench_node_cpu.py [--seconds 8] [--model M]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = ((640, 480), (1280, 720))
RATE_HZ = 30.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def segmenter_cpu_ms(model: str | None, width: int, height: int, frames: int) -> float:
    """Return CPU ms per frame of decode + ``Segmenter.segment`` back to back."""
    from dice_seg_ros.bags.bag_io import make_header, msg_class
    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.runtime.image_conversion import msg_to_rgb, numpy_to_image
    from dice_seg_ros.runtime.inference import Segmenter

    segmenter = Segmenter(model, device="cpu")
    msg = numpy_to_image(generate_scene(1, width, height)[0], "rgb8", make_header(0, "camera"),
                         msg_class("sensor_msgs/msg/Image"))
    segmenter.segment(msg_to_rgb(msg))
    start = time.process_time()
    for _ in range(frames):
        segmenter.segment(msg_to_rgb(msg))
    return (time.process_time() - start) * 1000.0 / frames


def relay_main() -> None:
    """Run the minimal relay node: image in, same-size mono8 image out on ``~/mask``."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("relay")
    publisher = node.create_publisher(Image, "~/mask", 10)

    def relay(msg: Image) -> None:
        publisher.publish(Image(header=msg.header, height=msg.height, width=msg.width,
                                encoding="mono8", step=msg.width,
                                data=bytes(msg.width * msg.height)))

    node.create_subscription(Image, "image", relay, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass


def segmentation_node_command() -> list[str]:
    """Return the command that starts segmentation_node: its console script, else python -c."""
    script = Path(sys.executable).with_name("segmentation_node")
    return [str(script)] if script.is_file() else [
        sys.executable, "-c", "from dice_seg_ros.ros.segmentation_node import main; main()"]


def node_command(name: str, model: str | None) -> list[str]:
    """Return the command line that starts node ``name`` ("segmentation_node" or "relay")."""
    if name == "relay":
        return [sys.executable, __file__, "--relay"]
    params = ["-p", "device:=cpu"] + (["-p", f"model_path:={model}"] if model else [])
    return segmentation_node_command() + ["--ros-args", *params]


def measure(name: str, model: str | None, width: int, height: int, seconds: float,
            extra_topics: tuple[str, ...] = ()) -> tuple[float, int, int]:
    """Run node ``name`` under 30 Hz frames; return (CPU ms per output frame, outputs, sent)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from dice_seg_ros.data.synthetic import generate_scene

    process = subprocess.Popen(node_command(name, model), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    node = rclpy.create_node(f"bench_{name}_{width}")
    publisher = node.create_publisher(Image, "image", qos_profile_sensor_data)
    node_name = "segmentation_node" if name != "relay" else "relay"
    outputs = []
    node.create_subscription(Image, f"/{node_name}/mask", lambda msg: outputs.append(1), 10)
    for topic in extra_topics:
        node.create_subscription(Image, f"/{node_name}/{topic}", lambda msg: None, 10)
    rgb = generate_scene(1, width, height)[0]
    frame = Image(height=height, width=width, encoding="rgb8", step=3 * width,
                  data=rgb.tobytes())
    try:
        deadline = time.monotonic() + 60.0
        while not outputs:  # start-up: model load, discovery
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {process.stderr.read()[-2000:]}")
            publisher.publish(frame)
            rclpy.spin_once(node, timeout_sec=1.0 / RATE_HZ)
        outputs.clear()
        cpu_start, sent = cpu_seconds(process.pid), 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            publisher.publish(frame)
            sent += 1
            next_frame = start + sent / RATE_HZ
            while time.monotonic() < next_frame:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_frame - time.monotonic()))
        cpu = cpu_seconds(process.pid) - cpu_start
        received = len(outputs)
    finally:
        process.terminate()
        process.wait(timeout=10)
        node.destroy_node()
    return cpu * 1000.0 / max(received, 1), received, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per run")
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        relay_main()
        return
    import rclpy

    floors = {size: segmenter_cpu_ms(args.model, *size, frames=60) for size in SIZES}
    rclpy.init()
    try:
        for width, height in SIZES:
            relay, got, sent = measure("relay", args.model, width, height, args.seconds)
            floor = relay + floors[(width, height)]
            print(f"{width}x{height} at {RATE_HZ:g} Hz: relay {relay:.1f} ms CPU/frame "
                  f"({got}/{sent} frames), "
                  f"Segmenter back to back {floors[(width, height)]:.1f} ms -> floor "
                  f"{floor:.1f} ms")
            for label, topics in (("mask only", ()),
                                  ("mask + colour + overlay", ("mask_color", "overlay"))):
                node, got, sent = measure("segmentation_node", args.model, width, height,
                                          args.seconds, topics)
                print(f"{width}x{height} segmentation_node ({label}): {node:.1f} ms CPU/frame "
                      f"({got}/{sent} frames) -> node / floor = {node / floor:.2f}"
                      f"{' (goal <= 1.5)' if (width, height) == SIZES[0] else ''}")
    finally:
        rclpy.shutdown()


if __name__ == "__main__":
    main()
