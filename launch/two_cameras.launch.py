"""Segment two cameras at once: one segmentation node per camera, each in its namespace.

Example::

    ros2 launch dice_seg_ros two_cameras.launch.py front:=/front/image_raw \
        rear:=/rear/image_raw device:=cuda

Runs ``/front/dice_seg`` and ``/rear/dice_seg`` from the same parameter file
(``/**`` keys); each publishes its own ``~/mask`` etc., reports under its own
fully qualified name on /diagnostics and caches TensorRT engines in its own
folder.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = "dice_seg_ros"
SHARE = get_package_share_directory(PACKAGE)
CAMERAS = ("front", "rear")


def generate_launch_description():
    """Declare one image topic per camera and include segmentation.launch.py for each."""
    arguments = [DeclareLaunchArgument(camera, default_value=f"/{camera}/image_raw",
                                       description=f"{camera} camera image topic")
                 for camera in CAMERAS]
    arguments += [DeclareLaunchArgument("device", default_value="",
                                        description="cuda, cpu or auto; empty = as in the YAML"),
                  DeclareLaunchArgument(
                      "params_file",
                      default_value=os.path.join(SHARE, "config", "segmentation.yaml"),
                      description="parameter YAML shared by both nodes")]
    source = PythonLaunchDescriptionSource(
        os.path.join(SHARE, "launch", "segmentation.launch.py"))
    nodes = [IncludeLaunchDescription(source, launch_arguments={
        "namespace": camera, "name": "dice_seg", "image_topic": LaunchConfiguration(camera),
        "device": LaunchConfiguration("device"),
        "params_file": LaunchConfiguration("params_file")}.items()) for camera in CAMERAS]
    return LaunchDescription([*arguments, *nodes])
