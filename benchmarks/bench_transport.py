"""Frames lost in transport for camera-sized images, by QoS, over loopback Fast DDS.

Publishes rgb8 frames at 30 Hz from this process to a subscriber in another
process (as a camera driver and the segmentation node), for 640x480 and
1280x720, best effort and reliable, depth 1 and 5 (publisher and subscriber
alike). The subscriber counts what arrived, the middleware's message-lost
events (``messages_lost``) and the gaps in the stamp sequence
(``stamp_gaps.StampGaps``, what the node reports as ``frames_missing_in_stamps``).
Loss is exact: the publisher stamps frame k at k periods. Prints one table row
per case. Needs rclpy (the ros-test extra).

Run: ``python benchmarks/bench_transport.py [--seconds 10]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SIZES = ((640, 480), (1280, 720))
QOS = (("best_effort", 1), ("best_effort", 5), ("reliable", 1), ("reliable", 5))
RATE_HZ = 30.0
PERIOD_NS = int(1e9 / RATE_HZ)
IDLE_S = 3.0  # the subscriber reports after this long without a frame


def subscriber_main(reliability: str, depth: int) -> None:
    """Count frames, message-lost events and stamp gaps on ``/image``; print them as JSON."""
    import rclpy
    from rclpy.event_handler import SubscriptionEventCallbacks
    from sensor_msgs.msg import Image

    from dice_seg_ros.ros.ros_plumbing import qos_profile
    from dice_seg_ros.ros.stamp_gaps import StampGaps

    rclpy.init()
    node = rclpy.create_node("transport_subscriber")
    gaps, lost, last = StampGaps(), [0], [time.monotonic()]
    stamps = []

    def on_image(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        stamps.append(stamp)
        gaps.add(stamp)
        last[0] = time.monotonic()

    def on_lost(info) -> None:
        lost[0] += info.total_count_change

    node.create_subscription(Image, "image", on_image, qos_profile(reliability, depth),
                             event_callbacks=SubscriptionEventCallbacks(message_lost=on_lost))
    while not stamps or time.monotonic() - last[0] < IDLE_S:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"received": len(stamps), "messages_lost": lost[0],
                      "stamp_gaps": gaps.missing,
                      "first": min(stamps) // PERIOD_NS, "last": max(stamps) // PERIOD_NS}))
    node.destroy_node()
    rclpy.shutdown()


def run_case(width: int, height: int, reliability: str, depth: int, seconds: float) -> dict:
    """Publish ``seconds`` of frames to a subscriber process; return its counts and ``sent``."""
    import rclpy
    from sensor_msgs.msg import Image

    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.ros.ros_plumbing import qos_profile

    child = subprocess.Popen([sys.executable, __file__, "--subscriber", reliability, str(depth)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node = rclpy.create_node(f"transport_publisher_{width}_{reliability}_{depth}")
    publisher = node.create_publisher(Image, "image", qos_profile(reliability, depth))
    frame = Image(height=height, width=width, encoding="rgb8", step=3 * width,
                  data=generate_scene(1, width, height)[0].tobytes())
    try:
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() == 0:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"subscriber did not start: {child.stderr.read()[-1500:]}")
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(0.5)  # let discovery settle both ways
        frames = int(seconds * RATE_HZ)
        start = time.monotonic()
        for index in range(frames):
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(
                (index + 1) * PERIOD_NS, 1_000_000_000)
            publisher.publish(frame)
            time.sleep(max(0.0, start + (index + 1) / RATE_HZ - time.monotonic()))
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        node.destroy_node()
    if not out.strip():
        raise RuntimeError(f"subscriber gave no counts: {err[-1500:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "sent": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per case")
    parser.add_argument("--subscriber", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        subscriber_main(args.subscriber[0], int(args.subscriber[1]))
        return
    import rclpy

    print(f"rgb8 at {RATE_HZ:g} Hz, {args.seconds:g} s per case, publisher and subscriber "
          "with the same QoS, separate processes, loopback Fast DDS")
    print("| size | reliability | depth | sent | received | lost | lost % | messages_lost events "
          "| frames_missing_in_stamps |")
    print("|---|---|---|---|---|---|---|---|---|")
    rclpy.init()
    try:
        for width, height in SIZES:
            for reliability, depth in QOS:
                counts = run_case(width, height, reliability, depth, args.seconds)
                lost = counts["sent"] - counts["received"]
                print(f"| {width}x{height} | {reliability} | {depth} | {counts['sent']} | "
                      f"{counts['received']} | {lost} | {100.0 * lost / counts['sent']:.1f} | "
                      f"{counts['messages_lost']} | {counts['stamp_gaps']} |", flush=True)
    finally:
        rclpy.shutdown()


if __name__ == "__main__":
    main()
