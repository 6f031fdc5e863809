"""Launch segmentation_node on a camera topic, optionally with RViz.

Example::

    ros2 launch dice_seg_ros segmentation.launch.py image_topic:=/camera/image_raw \
        device:=cuda use_rviz:=true

Parameters come from ``params_file`` (default: the shipped
config/segmentation.yaml); ``model_path``, ``backend``, ``device`` and
``use_compressed`` override it only when given.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dice_seg_ros"
SHARE = get_package_share_directory(PACKAGE)
OVERRIDABLE = ("model_path", "backend", "device", "use_compressed")
BOOLEANS = {"true": True, "false": False}


def _overrides(context):
    """Return the parameters given as non-empty launch arguments."""
    overrides = {}
    for name in OVERRIDABLE:
        value = LaunchConfiguration(name).perform(context)
        if not value:
            continue
        if name == "use_compressed":
            if value.lower() not in BOOLEANS:
                raise ValueError(f"launch argument use_compressed:={value!r}: use true or false")
            value = BOOLEANS[value.lower()]
        overrides[name] = value
    return overrides


def _segmentation_node(context):
    """Build the node with the parameter file plus the launch-argument overrides."""
    image_topic = LaunchConfiguration("image_topic").perform(context)
    return [Node(
        package=PACKAGE, executable="segmentation_node", name="segmentation_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), _overrides(context)],
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
    )]


def generate_launch_description():
    """Declare the launch arguments, the node and the optional RViz."""
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (sensor_msgs/Image); with "
                                          "use_compressed its /compressed sibling"),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(SHARE, "config", "segmentation.yaml"),
            description="segmentation_node parameter YAML"),
        DeclareLaunchArgument("model_path", default_value="",
                              description=".onnx or .pt model; empty = as in params_file"),
        DeclareLaunchArgument("backend", default_value="",
                              description="ort or torch; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="cuda, cpu or auto; empty = as in params_file"),
        DeclareLaunchArgument("use_compressed", default_value="",
                              description="true: subscribe to IMAGE_TOPIC/compressed; "
                                          "empty = as in params_file"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="also start RViz with rviz/dice_seg.rviz"),
        OpaqueFunction(function=_segmentation_node),
        Node(package="rviz2", executable="rviz2", name="rviz2",
             arguments=["-d", os.path.join(SHARE, "rviz", "dice_seg.rviz")],
             condition=IfCondition(LaunchConfiguration("use_rviz"))),
    ])
