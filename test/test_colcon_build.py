"""The package builds as a ROS 2 ament_python package with colcon (no ROS needed)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".git", "build", "install", "log", "__pycache__", ".pytest_cache"}


def _copy_package(dest: Path) -> None:
    shutil.copytree(ROOT, dest, ignore=lambda _dir, names: [
        n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")])


def test_colcon_build_installs_ros_layout(tmp_path):
    venv_bin = str(Path(sys.executable).parent)
    colcon = shutil.which("colcon", path=venv_bin) or shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions)")
    _copy_package(tmp_path / "src" / "dice_seg_ros")
    env = dict(os.environ, COLCON_HOME=str(tmp_path / ".colcon"))
    result = subprocess.run(
        [colcon, "build", "--packages-select", "dice_seg_ros"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    install = tmp_path / "install" / "dice_seg_ros"
    share = install / "share" / "dice_seg_ros"
    for executable in ("segmentation_node", "segmentation_lifecycle_node", "dice_monitor_node",
                       "dice-seg"):
        assert (install / "lib" / "dice_seg_ros" / executable).is_file(), executable
    # `ros2 run dice_seg_ros dice-seg` runs this file (the README's CLI after colcon).
    dice_seg = install / "lib" / "dice_seg_ros" / "dice-seg"
    result = subprocess.run([str(dice_seg), "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and "make-bag" in result.stdout, result.stderr
    assert (install / "share" / "ament_index" / "resource_index" / "packages"
            / "dice_seg_ros").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "config" / "classes.yaml").is_file()
    for launch_file in (ROOT / "launch").glob("*.launch.py"):
        assert (share / "launch" / launch_file.name).is_file(), launch_file.name
    for model in (ROOT / "models").glob("*.onnx"):
        assert (share / "models" / model.name).is_file(), model.name
