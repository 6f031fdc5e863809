"""Offline work on recordings: read, evaluate, calibrate, mine (no ROS runtime)."""
