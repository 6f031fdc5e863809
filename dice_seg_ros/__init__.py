"""dice_seg_ros: Dice-trained terrain segmentation for ROS 2.

Code lives in wings by data flow: ``runtime`` (a frame in, a mask and scores out), ``ros``
(rclpy nodes and their ROS-free cores), ``bags`` (offline work on recordings), ``learn`` (torch
training) and ``data`` (generated scenes, dataset readers). What users reach for most is
exported here under a short path::

    from dice_seg_ros import Segmenter, DiceLoss, DiceTracker

The exports are lazy (PEP 562): ``import dice_seg_ros`` imports neither torch nor rclpy, and a
name's module is imported the first time the name is used, so a robot without torch can use
``Segmenter`` while ``DiceLoss`` pulls torch in only when asked for.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

# The version lives in package.xml (ROS needs it there); setup.py copies it into the wheel's
# metadata, which is read here.
try:
    __version__ = metadata.version("dice_seg_ros")
except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    __version__ = "0+unknown"

_EXPORTS: dict[str, str] = {
    # runtime: inference and scores (numpy, ONNX Runtime)
    "Segmenter": "dice_seg_ros.runtime.inference",
    "Segmentation": "dice_seg_ros.runtime.inference",
    "ConfusionMatrix": "dice_seg_ros.runtime.metrics",
    "DiceTracker": "dice_seg_ros.runtime.metrics",
    "dice_per_class": "dice_seg_ros.runtime.metrics",
    "iou_per_class": "dice_seg_ros.runtime.metrics",
    "Calibration": "dice_seg_ros.runtime.estimated_dice",
    # classes
    "ClassSet": "dice_seg_ros.classes",
    "load_classes": "dice_seg_ros.classes",
    # bags
    "evaluate_bag": "dice_seg_ros.bags.evaluate",
    "BagReader": "dice_seg_ros.bags.bag_io",
    # learn: the Dice loss family (torch)
    "DiceLoss": "dice_seg_ros.learn.losses",
    "DiceCELoss": "dice_seg_ros.learn.losses",
    "GeneralizedDiceLoss": "dice_seg_ros.learn.losses",
    "TverskyLoss": "dice_seg_ros.learn.losses",
    "FocalTverskyLoss": "dice_seg_ros.learn.losses",
    "JaccardLoss": "dice_seg_ros.learn.losses",
    "FocalLoss": "dice_seg_ros.learn.losses",
    "make_loss": "dice_seg_ros.learn.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that holds ``name`` on first use and return the attribute."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dice_seg_ros' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    """List the public names (the lazy exports and ``__version__``), for tab completion."""
    return [*__all__, "__version__"]
