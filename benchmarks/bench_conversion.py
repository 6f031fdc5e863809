"""Image conversion timings at 640x480 and 1280x720 against a memory-copy floor.

Floor: ``np.copy`` of the same number of bytes as the RGB image (H*W*3), i.e.
read once and write once, the least any conversion that produces a new RGB
array must do.  Ratios below 1 mean the conversion produced no new array (a
zero-copy view).  Also prints the alternatives behind the module's design
choices (colorize gather, overlay blend, rclpy data assignment, colour lookup).

Timed round-robin against the floor like bench_metrics.py (whose helpers this
script imports, so run it as a file from any directory).

Run: ``python benchmarks/bench_conversion.py [--repeats N]``
"""

import argparse
import array

import cv2
import numpy as np
from bench_metrics import interleaved_ms, print_table
from rosbags.typesys import Stores, get_typestore

from dice_seg_ros.classes import load_classes
from dice_seg_ros.runtime.image_conversion import (color_to_ids, colorize, image_to_rgb,
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


def image_msg(pixels: np.ndarray, encoding: str, pad: int) -> object:
    """Build an Image whose rows carry ``pad`` bytes of padding."""
    height, width = pixels.shape[:2]
    rows = np.zeros((height, width * 3 + pad), np.uint8)
    rows[:, : width * 3] = pixels.reshape(height, -1)
    return Image(header=HEADER, height=height, width=width, encoding=encoding,
                 is_bigendian=0, step=rows.shape[1], data=rows.reshape(-1))


def integer_blend(rgb: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Blend half and half in uint16 arithmetic (the alternative to cv2.addWeighted)."""
    mixed = rgb.astype(np.uint16) * 128
    mixed += color.astype(np.uint16) * 128
    return (mixed >> 8).astype(np.uint8)


def per_class_ids(color: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Colour label -> ids with one np.all pass per class (the alternative to color_to_ids)."""
    out = np.full(color.shape[:2], 255, np.uint8)
    for class_id, rgb_value in enumerate(colors):
        out[np.all(color == rgb_value, axis=-1)] = class_id
    return out


def bench_size(width: int, height: int, repeats: int) -> None:
    """Print every timing for one image size."""
    rng = np.random.default_rng(0)
    classes = load_classes()
    palette = classes.palette()
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ids = np.repeat(rng.integers(0, classes.num_classes, (height, width // 16),
                                 dtype=np.uint8), 16, axis=1)
    color = colorize(ids, palette)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    floor = f"floor: np.copy of {rgb.nbytes} bytes"
    funcs = {floor: lambda: np.copy(rgb)}
    for encoding, pixels in (("rgb8", rgb), ("bgr8", bgr)):
        for pad in (0, 64):
            msg = image_msg(pixels, encoding, pad)
            funcs[f"image_to_rgb {encoding} step pad {pad}"] = lambda m=msg: image_to_rgb(m)
    funcs.update({
        "colorize (cv2.LUT per channel, used)": lambda: colorize(ids, palette),
        "  alt: palette[ids] fancy indexing": lambda: palette[ids],
        "  alt: np.take(palette, ids, axis=0)": lambda: np.take(palette, ids, axis=0),
        "overlay (cv2.addWeighted, used)": lambda: overlay(rgb, color, 0.5),
        "  alt: uint16 integer blend": lambda: integer_blend(rgb, color),
        "numpy_to_image mono8 mask, rosbags": lambda: numpy_to_image(ids, "mono8", HEADER, Image),
        "numpy_to_image rgb8, rosbags": lambda: numpy_to_image(rgb, "rgb8", HEADER, Image),
        "numpy_to_image rgb8, rclpy-like (frombytes)":
            lambda: numpy_to_image(rgb, "rgb8", HEADER, RclpyLikeImage),
        "  alt: array.array('B', rgb.tobytes())": lambda: array.array("B", rgb.tobytes()),
        "  alt: rgb.tobytes() (rclpy then checks bytes)": lambda: rgb.tobytes(),
        "color_to_ids (24-bit key table, used)": lambda: color_to_ids(color, classes.colors),
        "  alt: per-class np.all loop": lambda: per_class_ids(color, classes.colors),
    })
    print_table(f"{width}x{height}, median [min] of {repeats} rounds:",
                interleaved_ms(funcs, repeats), floor)


def main() -> None:
    """Run both sizes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    for width, height in ((640, 480), (1280, 720)):
        bench_size(width, height, args.repeats)


if __name__ == "__main__":
    main()
