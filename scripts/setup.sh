#!/usr/bin/env bash
# Install dice_seg_ros and everything its tests need into ./.venv (Python >= 3.10),
# including ROS 2 Jazzy's rclpy as wheels (extra ros-test) so the node tests run.
# torch is pinned to the CPU build available on this machine; on a robot with a
# GPU see README "On a robot" for the CUDA packages to install instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e ".[train,test,ros-test,fleet]"
echo "dice_seg_ros installed in $(pwd)/.venv; activate with: source .venv/bin/activate"
