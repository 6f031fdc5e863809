"""The rclpy nodes and their ROS-free cores."""
