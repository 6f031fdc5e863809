"""``dice-seg make-bag``: write a labeled rosbag2 of generated terrain scenes.

The bag looks like a real labeled recording: a camera image topic (rgb8, or
JPEG CompressedImage), a label topic (mono8 class ids) and CameraInfo, all three
with the same header stamp and ``frame_id`` per frame.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dice_seg_ros.bags.bag_io import (CAMERA_INFO_TYPE, COMPRESSED_TYPE, IMAGE_TYPE, STORAGES,
                                      BagWriter, make_header, msg_class)
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.runtime.image_conversion import numpy_to_compressed, numpy_to_image

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = IMAGE_TOPIC + "/compressed"
LABEL_TOPIC = "/camera/labels"
INFO_TOPIC = "/camera/camera_info"
FRAME_ID = "camera_optical_frame"
START_NS = 1_700_000_000 * 1_000_000_000  # fixed, so bags are reproducible byte for byte
HFOV_DEG = 90.0


def camera_info(header: Any, width: int, height: int) -> Any:
    """Return a pinhole ``sensor_msgs/msg/CameraInfo`` (90 deg horizontal FOV, no distortion)."""
    focal = (width / 2.0) / math.tan(math.radians(HFOV_DEG) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    roi = msg_class("sensor_msgs/msg/RegionOfInterest")(
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return msg_class(CAMERA_INFO_TYPE)(
        header=header, height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array([focal, 0, cx, 0, focal, cy, 0, 0, 1], float),
        r=np.eye(3).ravel(), p=np.array([focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0], float),
        binning_x=0, binning_y=0, roi=roi)


def write_synthetic_bag(out: str | Path, frames: int, width: int = 640, height: int = 480,
                        fps: float = 10.0, seed: int = 0, storage: str = "mcap",
                        compressed: bool = False, progress: bool = True) -> Path:
    """Write ``frames`` generated scenes as a labeled bag at ``out``; return ``out``.

    Args:
        out: bag directory to create (must not exist).
        frames: number of frames (>= 1).
        width: image width in pixels.
        height: image height in pixels.
        fps: frame rate; stamps are ``1 / fps`` seconds apart.
        seed: scene ``k`` uses seed ``seed + k``.
        storage: "mcap" or "sqlite3".
        compressed: write the image as JPEG CompressedImage on ``COMPRESSED_TOPIC``.
        progress: show a tqdm bar.

    """
    if frames < 1 or width < 1 or height < 1 or fps <= 0:
        raise ValueError(f"need frames, width, height >= 1 and fps > 0; got frames={frames}, "
                         f"width={width}, height={height}, fps={fps}")
    image_topic = COMPRESSED_TOPIC if compressed else IMAGE_TOPIC
    image_cls = msg_class(COMPRESSED_TYPE if compressed else IMAGE_TYPE)
    label_cls = msg_class(IMAGE_TYPE)
    period_ns = int(round(1e9 / fps))
    with BagWriter(out, storage=storage) as bag:
        for k in tqdm(range(frames), desc="make-bag", unit="frame", disable=not progress):
            rgb, labels = generate_scene(seed + k, width, height)
            stamp = START_NS + k * period_ns
            header = make_header(stamp, FRAME_ID)
            image = (numpy_to_compressed(rgb, header, image_cls) if compressed
                     else numpy_to_image(rgb, "rgb8", header, image_cls))
            bag.write(INFO_TOPIC, stamp, camera_info(header, width, height))
            bag.write(image_topic, stamp, image)
            bag.write(LABEL_TOPIC, stamp, numpy_to_image(labels, "mono8", header, label_cls))
    return Path(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg make-bag`` options."""
    parser.add_argument("--out", required=True, type=Path, help="bag directory to create")
    parser.add_argument("--frames", type=int, default=30, help="number of frames (default 30)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    parser.add_argument("--compressed", action="store_true",
                        help=f"write JPEG CompressedImage on {COMPRESSED_TOPIC} "
                             f"instead of rgb8 on {IMAGE_TOPIC}")
    parser.add_argument("--width", type=int, default=640, help="pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="pixels (default 480)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Write the bag and say which topics it holds."""
    path = write_synthetic_bag(args.out, args.frames, args.width, args.height, args.fps,
                               args.seed, args.storage, args.compressed)
    image_topic = COMPRESSED_TOPIC if args.compressed else IMAGE_TOPIC
    print(f"wrote {args.frames} frames to {path} ({args.storage}): image {image_topic}, "
          f"labels {LABEL_TOPIC} (mono8 class ids), camera info {INFO_TOPIC}")
    print(f"evaluate with: dice-seg eval --bag {path} --image-topic {image_topic} "
          f"--label-topic {LABEL_TOPIC}")
    return 0
