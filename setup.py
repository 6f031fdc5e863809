"""Install dice_seg_ros with pip (any Python) or colcon (a ROS 2 workspace)."""

import xml.etree.ElementTree as ElementTree
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dice_seg_ros"
# package.xml holds the one version number (ROS reads it there; the package reads its metadata).
VERSION = ElementTree.parse(Path(__file__).with_name("package.xml")).findtext("version")

setup(
    name=PACKAGE,
    version=VERSION,
    description="Dice-trained terrain segmentation for ROS 2: node, online Dice "
                "monitor and ROS-free bag evaluation",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.pt")
         + glob("models/*.quality.json")),
    ],
    # ROS packages (rclpy, sensor_msgs, ...) are declared in package.xml and
    # come from the ROS installation; they must never be pip requirements.
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.17",
        "rosbags>=0.10",
        "mcap>=1.2",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pillow>=9.0",  # palette PNG labels keep their indices (OpenCV expands them)
        "pyyaml>=6.0",
    ],
    extras_require={
        "train": ["torch>=2.1", "onnx>=1.15", "onnxscript>=0.1"],
        "gpu": ["onnxruntime-gpu>=1.17"],
        "fleet": ["ray>=2.9"],
        "test": [
            "pytest>=7",
            "flake8>=6",
            "flake8-docstrings>=1.7",
            "scikit-learn>=1.3",
            "monai>=1.3",
            "colcon-common-extensions>=0.3",
        ],
        # ROS 2 Jazzy's rclpy and message packages as wheels, for running the
        # nodes in tests and CI without a ROS installation. A robot gets them
        # from its ROS installation instead (package.xml).
        "ros-test": [
            "ros-jazzy-rclpy[fastrtps]",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-std-srvs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-rcl-interfaces",
            "ros-jazzy-lifecycle-msgs",
            "ros-jazzy-nav-msgs",
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "dice-seg = dice_seg_ros.cli:main",
            "segmentation_node = dice_seg_ros.ros.segmentation_node:main",
            "segmentation_lifecycle_node = dice_seg_ros.ros.segmentation_node:lifecycle_main",
            "dice_monitor_node = dice_seg_ros.ros.dice_monitor_node:main",
        ],
    },
)
