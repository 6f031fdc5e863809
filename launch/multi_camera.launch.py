"""Segment several cameras with one segmentation node: one network, one batch per cycle.

Example::

    ros2 launch dice_seg_ros multi_camera.launch.py \
        image_topics:=/front/image_raw,/rear/image_raw device:=cuda

One node (``/dice_seg``) subscribes to every camera and publishes each
camera's outputs under its namespace: ``/front/dice_seg/mask``,
``/rear/dice_seg/mask`` and so on, the topics two_cameras.launch.py's two
nodes would publish. Each camera keeps its own latest-frame slot, so a slow
cycle drops old frames instead of queueing them; /diagnostics has one status
per camera (``/dice_seg: segmentation /front``) with its fps, drops, frames lost
in transport and the batch cycle's latency.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dice_seg_ros"
SHARE = get_package_share_directory(PACKAGE)


def _segmentation_node(context):
    """Build the node with the parameter file plus the camera list and device."""
    topics = [t.strip() for t in LaunchConfiguration("image_topics").perform(context).split(",")
              if t.strip()]
    overrides = {"image_topics": topics}
    device = LaunchConfiguration("device").perform(context)
    if device:
        overrides["device"] = device
    return [Node(
        package=PACKAGE, executable="segmentation_node", name=LaunchConfiguration("name"),
        output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), overrides])]


def generate_launch_description():
    """Declare the camera list, device, name and parameter file; start the node."""
    return LaunchDescription([
        DeclareLaunchArgument("image_topics", default_value="/front/image_raw,/rear/image_raw",
                              description="comma-separated camera image topics, each in its "
                                          "own namespace"),
        DeclareLaunchArgument("name", default_value="dice_seg",
                              description="node name; outputs go to <camera ns>/<name>/"),
        DeclareLaunchArgument("device", default_value="",
                              description="cuda, cpu or auto; empty = as in params_file"),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(SHARE, "config", "segmentation.yaml"),
            description="segmentation_node parameter YAML (keys /** or the node's name)"),
        OpaqueFunction(function=_segmentation_node),
    ])
