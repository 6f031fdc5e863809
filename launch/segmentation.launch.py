"""Launch segmentation_node on a camera topic, optionally with RViz.

Example::

    ros2 launch dice_seg_ros segmentation.launch.py namespace:=camera \
        image_topic:=/camera/image_raw device:=cuda use_rviz:=true

The node runs as ``/<namespace>/<name>`` (default ``/camera/dice_seg``), so its
outputs are ``/camera/dice_seg/mask`` and so on: the names ``dice-seg eval``
writes into its output bag and ``rviz/dice_seg.rviz`` shows. One launch per
camera with its own namespace keeps several cameras apart (see
two_cameras.launch.py). Parameters come from ``params_file`` (default: the
shipped config/segmentation.yaml, keyed ``/**`` so any name and namespace
get them); ``model_path``, ``backend``, ``device``, ``use_compressed``,
``qos_reliability`` and ``qos_depth`` override it only when given. ``use_rviz:=true``
starts RViz where rviz2 is installed; where it is not, the launch logs a warning
and goes on without RViz (it is optional).
"""

import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
import launch.logging
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dice_seg_ros"
SHARE = get_package_share_directory(PACKAGE)
OVERRIDABLE = ("model_path", "backend", "device", "use_compressed", "qos_reliability",
               "qos_depth")
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
        if name == "qos_depth":
            if not value.isdigit():
                raise ValueError(f"launch argument qos_depth:={value!r}: use a whole number")
            value = int(value)
        overrides[name] = value
    return overrides


def camera_info_topic(image_topic: str) -> str:
    """Return the camera_info topic beside an image topic (/cam/image_raw -> /cam/camera_info)."""
    parent = image_topic.rstrip("/").rsplit("/", 1)[0] if "/" in image_topic else ""
    return f"{parent}/camera_info" if parent else "camera_info"


def _segmentation_node(context):
    """Build the node with the parameter file plus the launch-argument overrides."""
    image_topic = LaunchConfiguration("image_topic").perform(context)
    return [Node(
        package=PACKAGE, executable="segmentation_node",
        name=LaunchConfiguration("name"), namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), _overrides(context)],
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed"),
                    ("camera_info", camera_info_topic(image_topic))],
    )]


def _rviz(context):
    """Start RViz if asked and installed; without rviz2, warn and go on without it."""
    if LaunchConfiguration("use_rviz").perform(context).lower() not in ("true", "1"):
        return []
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        launch.logging.get_logger("launch.user").warning(
            "use_rviz:=true but rviz2 is not installed: starting without RViz "
            "(install ros-$ROS_DISTRO-rviz2 for it)")
        return []
    return [Node(package="rviz2", executable="rviz2", name="rviz2",
                 arguments=["-d", os.path.join(SHARE, "rviz", "dice_seg.rviz")])]


def generate_launch_description():
    """Declare the launch arguments, the node and the optional RViz."""
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="camera",
                              description="namespace of the node: one per camera"),
        DeclareLaunchArgument("name", default_value="dice_seg", description="node name"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (sensor_msgs/Image); with "
                                          "use_compressed its /compressed sibling"),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(SHARE, "config", "segmentation.yaml"),
            description="segmentation_node parameter YAML (keys /** or the node's name)"),
        DeclareLaunchArgument("model_path", default_value="",
                              description=".onnx or .pt model; empty = as in params_file"),
        DeclareLaunchArgument("backend", default_value="",
                              description="ort or torch; empty = as in params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="cuda, cpu or auto; empty = as in params_file"),
        DeclareLaunchArgument("use_compressed", default_value="",
                              description="true: subscribe to IMAGE_TOPIC/compressed; "
                                          "empty = as in params_file"),
        DeclareLaunchArgument("qos_reliability", default_value="",
                              description="image subscription: auto (follow the camera), "
                                          "best_effort or reliable; empty = as in params_file"),
        DeclareLaunchArgument("qos_depth", default_value="",
                              description="image subscription queue depth, in messages; "
                                          "empty = as in params_file"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="also start RViz with rviz/dice_seg.rviz"),
        OpaqueFunction(function=_segmentation_node),
        OpaqueFunction(function=_rviz),
    ])
