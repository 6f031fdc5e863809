"""Several cameras in one segmentation node: each camera's topics and output prefix.

A node serving several cameras (``image_topics``) gives each camera the outputs
one node in that camera's namespace would publish. The frames of all cameras
run as one batch per cycle through ``segmentation_core.SegmentationWorker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dice_seg_ros.runtime.outputs import camera_namespace


@dataclass(frozen=True)
class CameraTopics:
    """Topics of one camera served by a segmentation node (relative names resolve in its ns).

    Attributes:
        camera: the camera's namespace (``/front``), or "" for the node's own.
        image: the subscribed image topic (``.../compressed`` for CompressedImage).
        camera_info: the camera_info topic beside the image topic.
        outputs: prefix of the output topics: ``<camera ns>/<node name>``, or ``~``
            (the node's private namespace) for a camera in the node's own namespace.

    """

    camera: str
    image: str
    camera_info: str
    outputs: str

    def output(self, name: str) -> str:
        """Return the topic of output ``name`` (mask, mask_color, ...) of this camera."""
        return f"{self.outputs}/{name}"


def camera_topics(image_topics: Sequence[str], node_name: str,
                  compressed: bool = False) -> list[CameraTopics]:
    """Return the topics of each camera: ``/front/image_raw`` -> outputs under ``/front/<node>``.

    Outputs follow the single-camera scheme (``~/mask`` of a node in the camera's
    namespace), so one node serving ``/front`` and ``/rear`` publishes what two
    nodes named ``node_name`` in those namespaces would.
    """
    cameras = []
    for topic in image_topics:
        namespace = camera_namespace(topic)
        cameras.append(CameraTopics(
            camera=namespace,
            image=f"{topic}/compressed" if compressed else topic,
            camera_info=f"{namespace}/camera_info" if namespace else "camera_info",
            outputs=f"{namespace}/{node_name}" if namespace else "~"))
    return cameras
