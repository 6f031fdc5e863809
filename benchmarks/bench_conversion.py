"""Image conversion timings at 640x480 and 1280x720 against a memory-copy floor.

Floor: ``np.copy`` of the same number of bytes as the RGB image (H*W*3), i.e.
read once and write once, the least any conversion that produces a new RGB
array must do.  Ratios below 1 mean the conversion produced no new array (a
zero-copy view).  Also prints the alternatives behind the module's design
choices (colorize gather, overlay blend, rclpy data assignment, colour lookup).

Run: ``python benchmarks/bench_conversion.py [--repeats N]``
"""

import argparse
import array
import timeit

import cv2
import numpy as np
from rosbags.typesys import get_typestore, Stores

from dice_seg_ros.classes import load_classes
from dice_seg_ros.image_conversion import (color_to_ids, colorize, image_to_rgb,
                                           numpy_to_image, overlay)

TS = get_typestore(Stores.ROS2_JAZZY)
Image = TS.types["sensor_msgs/msg/Image"]
HEADER = TS.types["std_msgs/msg/Header"](
    stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="camera")


class RclpyLikeImage:
    """Stand-in for rclpy's sensor_msgs.msg.Image: empty ctor, attribute assignment."""

    @classmethod
    def get_fields_and_field_types(cls) -> dict:
        """Mark this class as rclpy-like for numpy_to_image."""
        return {}


def median_ms(func, repeats: int) -> float:
    """Median wall time of ``func()`` in milliseconds over ``repeats`` calls."""
    func()
    return float(np.median(timeit.repeat(func, number=1, repeat=repeats))) * 1e3


def image_msg(pixels: np.ndarray, encoding: str, pad: int) -> object:
    """Build an Image whose rows carry ``pad`` bytes of padding."""
    height, width = pixels.shape[:2]
    rows = np.zeros((height, width * 3 + pad), np.uint8)
    rows[:, : width * 3] = pixels.reshape(height, -1)
    return Image(header=HEADER, height=height, width=width, encoding=encoding,
                 is_bigendian=0, step=rows.shape[1], data=rows.reshape(-1))


def report(name: str, ms: float, floor: float) -> None:
    """Print one timing and its ratio to the floor."""
    print(f"  {name:44s} {ms:8.3f} ms  {ms / floor:6.2f}x floor")


def bench_size(width: int, height: int, repeats: int) -> None:
    """Print every timing for one image size."""
    rng = np.random.default_rng(0)
    classes = load_classes()
    palette = classes.palette()
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ids = np.repeat(rng.integers(0, classes.num_classes, (height, width // 16),
                                 dtype=np.uint8), 16, axis=1)
    color = colorize(ids, palette)
    floor = median_ms(lambda: np.copy(rgb), repeats)
    print(f"\n{width}x{height} (median of {repeats}); floor np.copy of {rgb.nbytes} bytes: "
          f"{floor:.3f} ms")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for encoding, pixels in (("rgb8", rgb), ("bgr8", bgr)):
        for pad in (0, 64):
            msg = image_msg(pixels, encoding, pad)
            report(f"image_to_rgb {encoding} step pad {pad}",
                   median_ms(lambda m=msg: image_to_rgb(m), repeats), floor)
    report("colorize (cv2.LUT per channel, used)",
           median_ms(lambda: colorize(ids, palette), repeats), floor)
    report("  alt: palette[ids] fancy indexing", median_ms(lambda: palette[ids], repeats), floor)
    report("  alt: np.take(palette, ids, axis=0)",
           median_ms(lambda: np.take(palette, ids, axis=0), repeats), floor)
    report("overlay (cv2.addWeighted, used)",
           median_ms(lambda: overlay(rgb, color, 0.5), repeats), floor)

    def integer_blend() -> np.ndarray:
        weight = 128
        mixed = rgb.astype(np.uint16) * (256 - weight)
        mixed += color.astype(np.uint16) * weight
        return (mixed >> 8).astype(np.uint8)

    report("  alt: uint16 integer blend", median_ms(integer_blend, repeats), floor)
    report("numpy_to_image mono8 mask, rosbags",
           median_ms(lambda: numpy_to_image(ids, "mono8", HEADER, Image), repeats), floor)
    report("numpy_to_image rgb8, rosbags",
           median_ms(lambda: numpy_to_image(rgb, "rgb8", HEADER, Image), repeats), floor)
    report("numpy_to_image rgb8, rclpy-like (frombytes)",
           median_ms(lambda: numpy_to_image(rgb, "rgb8", HEADER, RclpyLikeImage), repeats),
           floor)
    report("  alt: array.array('B', rgb.tobytes())",
           median_ms(lambda: array.array("B", rgb.tobytes()), repeats), floor)
    report("  alt: rgb.tobytes() (then rclpy checks each byte)",
           median_ms(lambda: rgb.tobytes(), repeats), floor)
    report("color_to_ids (24-bit key table, used)",
           median_ms(lambda: color_to_ids(color, classes.colors), repeats), floor)

    def per_class_loop() -> np.ndarray:
        out = np.full(color.shape[:2], 255, np.uint8)
        for class_id, rgb_value in enumerate(classes.colors):
            out[np.all(color == rgb_value, axis=-1)] = class_id
        return out

    report("  alt: per-class np.all loop", median_ms(per_class_loop, repeats), floor)


def main() -> None:
    """Run both sizes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    for width, height in ((640, 480), (1280, 720)):
        bench_size(width, height, args.repeats)


if __name__ == "__main__":
    main()
