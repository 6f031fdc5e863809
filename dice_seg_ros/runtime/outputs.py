"""Names of the segmentation outputs, shared by the node, several cameras and ``dice-seg eval``.

A camera ``/camera/image_raw`` gives ``/camera/dice_seg/mask`` etc.: the node runs as
``<camera namespace>/dice_seg`` (its default name, and the launch files' ``name``), and
``dice-seg eval`` writes the same topics into its output bag, so one RViz layout shows both.
"""

from __future__ import annotations

NODE_NAME = "dice_seg"

MASK = "mask"
MASK_COLOR = "mask_color"
OVERLAY = "overlay"
CONFIDENCE = "confidence"
CAMERA_INFO = "camera_info"
CLASS_TABLE = "class_table"
ESTIMATED_DICE = "estimated_dice"
ESTIMATED_DICE_MEAN = "estimated_dice_mean"
ESTIMATED_DICE_STAMPED = "estimated_dice_stamped"
TRAVERSABILITY = "traversability"

# Every output a camera can have, under its output prefix.
OUTPUTS = (MASK, MASK_COLOR, OVERLAY, CONFIDENCE, CAMERA_INFO, CLASS_TABLE, ESTIMATED_DICE,
           ESTIMATED_DICE_MEAN, ESTIMATED_DICE_STAMPED, TRAVERSABILITY)


def camera_namespace(image_topic: str) -> str:
    """Return the namespace of a camera topic: ``/front/image_raw`` -> ``/front``.

    A topic without one (``image``, ``/image``) gives "": the node's own namespace. A
    ``.../compressed`` suffix (a CompressedImage topic) is not part of the camera's name.
    """
    base = image_topic.rstrip("/")
    base = base[: -len("/compressed")] if base.endswith("/compressed") else base
    return base.rsplit("/", 1)[0] if "/" in base else ""


def output_topic(image_topic: str, name: str, node_name: str = NODE_NAME) -> str:
    """Return the absolute topic of output ``name`` for a camera's image topic."""
    return f"{camera_namespace(image_topic)}/{node_name}/{name}"
