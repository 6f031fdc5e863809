"""Shared fixtures: tiny ROS messages, tiny labeled bags, tiny ONNX models."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

# Keep the suite light on the shared 2-core CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The rclpy tests talk DDS on loopback only, in a domain of their own, so that a
# plain `pytest` (the README's test command) never meets another graph.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(30 + os.getpid() % 60))

SMALL_W, SMALL_H = 160, 120


def _typestore():
    from dice_seg_ros.bags.bag_io import typestore

    return typestore()


# The Jazzy typestore the bag tools use: rosbags message classes stand in for rclpy's.
TS = _typestore()


def image_msg(array: np.ndarray, stamp_ns: int, encoding: str = "rgb8",
              frame_id: str = "camera_optical_frame"):
    """Return a rosbags sensor_msgs/msg/Image holding ``array`` (uint8, HxW or HxWx3)."""
    from dice_seg_ros.bags.bag_io import make_header, msg_class

    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    return msg_class("sensor_msgs/msg/Image")(
        header=make_header(stamp_ns, frame_id), height=height, width=width,
        encoding=encoding, is_bigendian=0, step=width * channels,
        data=array.reshape(-1))


@contextlib.contextmanager
def rclpy_graph(domain_id: int, timeout_s: float):
    """Run an isolated rclpy context in DDS domain ``domain_id``; yield (context, add, spin_until).

    ``add(node)`` puts a node on the executor (destroyed on exit) and returns it;
    ``spin_until(condition, timeout=timeout_s)`` spins until ``condition()`` holds or the
    timeout (seconds) passes, and returns ``condition()``. rclpy is imported here, so test
    modules that skip without it can still import this file.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain_id)
    executor = SingleThreadedExecutor(context=context)
    nodes = []

    def add(node):
        nodes.append(node)
        executor.add_node(node)
        return node

    def spin_until(condition, timeout=timeout_s):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        return condition()

    try:
        yield context, add, spin_until
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def shipped_model_or_skip(name: str | None = None) -> Path:
    """Return the path of shipped model ``name`` (default: the node's), or skip while absent."""
    from dice_seg_ros.resources import DEFAULT_MODEL, resource_path

    try:
        return resource_path(name or DEFAULT_MODEL)
    except FileNotFoundError as exc:
        pytest.skip(f"shipped model not present yet ({exc})")


def write_tiny_onnx(path: Path, class_names=None, with_meta: bool = True,
                    nan: bool = False, size: tuple[int, int] = (64, 48)) -> Path:
    """Write a 1x1-conv ONNX segmenter (RGB -> class logits) with ModelMeta attached.

    The conv has fixed random weights, so its argmax is a known function of
    colour: useful to test pre/post-processing exactly. ``nan`` makes every logit
    NaN; ``with_meta=False`` leaves the metadata out.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from dice_seg_ros.classes import load_classes
    from dice_seg_ros.runtime.model_meta import ONNX_META_KEY, ModelMeta

    names = tuple(class_names or load_classes().names)
    meta = ModelMeta(input_width=size[0], input_height=size[1], mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25), class_names=names, arch="tiny_conv")
    weight, bias = tiny_conv_weights(len(names))
    if nan:
        bias = np.full_like(bias, np.nan)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", len(names), "H", "W"])],
        [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_meta:
        helper.set_model_props(model, {ONNX_META_KEY: meta.to_json()})
    onnx.save(model, path)
    return path


def tiny_conv_weights(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the fixed ``(C, 3, 1, 1)`` weights and ``(C,)`` bias of the tiny model."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(num_classes, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(scale=0.1, size=num_classes).astype(np.float32)
    return weight, bias


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory) -> Path:
    """Write the tiny 6-class ONNX model once per session and return its path."""
    return write_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def small_bag(tmp_path_factory) -> Path:
    """Write a 4-frame 160x120 labeled MCAP bag (``dice-seg make-bag`` layout) once."""
    from dice_seg_ros.bags.synthetic_bag import write_synthetic_bag

    path = tmp_path_factory.mktemp("bags") / "small"
    return write_synthetic_bag(path, frames=4, width=SMALL_W, height=SMALL_H, seed=3,
                               progress=False)


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_onnx_model):
    """Return a CPU, single-thread Segmenter on the tiny ONNX model."""
    from dice_seg_ros.runtime.inference import Segmenter

    return Segmenter(tiny_onnx_model, device="cpu", threads=1)


@pytest.fixture
def calibrated_tiny_model(tiny_onnx_model, tmp_path) -> Path:
    """Copy the tiny model into tmp_path beside an estimated-Dice calibration fitted for it.

    The calibration is fitted on random features whose "Dice" is 0.9 times the
    mean top-class probability: its estimates vary from frame to frame and lie
    in [0, 1), which is all the tests rely on.
    """
    import shutil

    from dice_seg_ros.classes import load_classes
    from dice_seg_ros.runtime.estimated_dice import (feature_names, file_sha256, fit_calibration,
                                                     sidecar_path)

    model = Path(shutil.copy(tiny_onnx_model, tmp_path / "tiny.onnx"))
    names = feature_names(load_classes().names)
    rng = np.random.default_rng(7)
    features = rng.random((40, len(names)))
    calibration = fit_calibration(features, 0.9 * features[:, names.index("top_prob")], 1.0,
                                  names)
    calibration.model_file, calibration.model_sha256 = model.name, file_sha256(model)
    calibration.save(sidecar_path(model))
    return model
