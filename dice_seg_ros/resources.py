"""Locate files shipped with the package (config, models, launch, rviz).

The same files are installed three ways: a source checkout (``pip install -e``),
a wheel (``data_files`` land under ``<prefix>/share/dice_seg_ros``) and a colcon
workspace (the ament share directory). Callers ask for a path relative to the
package share root and get the first copy that exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_NAME = "dice_seg_ros"

DEFAULT_CLASSES = "config/classes.yaml"
DEFAULT_MODEL = "models/terrain_seg.onnx"
DEFAULT_TORCH_MODEL = "models/terrain_seg.pt"


def _ament_share() -> Path | None:
    """Return the ament share directory of this package, or None outside ROS."""
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE_NAME))
    except (PackageNotFoundError, OSError):
        # OSError: no AMENT_PREFIX_PATH (rclpy from pip, no sourced workspace).
        return None


def share_roots() -> list[Path]:
    """Return candidate share roots, most specific first."""
    roots = [Path(__file__).resolve().parent.parent]
    ament = _ament_share()
    if ament is not None:
        roots.append(ament)
    roots.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    return roots


def resource_path(relative: str) -> Path:
    """Return the installed path of a shipped file such as ``config/classes.yaml``.

    Raises:
        FileNotFoundError: naming every place that was searched.

    """
    searched = []
    for root in share_roots():
        candidate = root / relative
        if candidate.is_file():
            return candidate
        searched.append(str(candidate))
    raise FileNotFoundError(
        f"shipped file {relative!r} not found; searched: {', '.join(searched)}")
