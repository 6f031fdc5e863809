"""dice_seg_ros: Dice-trained terrain segmentation for ROS 2.

The library (losses, metrics, data, model, inference, bag replay) imports
without ROS; only ``segmentation_node`` and ``dice_monitor_node`` need rclpy.
"""

__version__ = "0.1.0"
