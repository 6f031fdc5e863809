"""Shipped files are found with and without a ROS workspace sourced."""

import sys
import types

from dice_seg_ros import resources
from dice_seg_ros.resources import DEFAULT_CLASSES, resource_path


def _fake_ament_index(monkeypatch, error: Exception) -> None:
    """Install an ament_index_python whose lookup raises ``error``, as the pip wheel does."""
    package = types.ModuleType("ament_index_python")
    packages = types.ModuleType("ament_index_python.packages")

    class PackageNotFoundError(KeyError):
        pass

    def get_package_share_directory(name):
        raise error

    packages.PackageNotFoundError = PackageNotFoundError
    packages.get_package_share_directory = get_package_share_directory
    package.packages = packages
    monkeypatch.setitem(sys.modules, "ament_index_python", package)
    monkeypatch.setitem(sys.modules, "ament_index_python.packages", packages)


def test_no_ament_prefix_path_falls_back_to_the_other_roots(monkeypatch):
    """ament_index_python raises EnvironmentError (an OSError) without AMENT_PREFIX_PATH."""
    _fake_ament_index(monkeypatch, EnvironmentError("AMENT_PREFIX_PATH is not set"))
    assert resources._ament_share() is None
    assert resource_path(DEFAULT_CLASSES).is_file()


def test_real_ament_index_without_workspace(monkeypatch):
    """With the pip ROS wheels and nothing sourced, lookups still work."""
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert resource_path(DEFAULT_CLASSES).is_file()
