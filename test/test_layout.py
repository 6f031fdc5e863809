"""The wings' import rules (docs/ARCHITECTURE.md) and the lazy top-level exports."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dice_seg_ros"
WINGS = ("runtime", "ros", "bags", "learn", "data")
# wing -> wings it must never import (at module level or inside a function).
FORBIDDEN = {
    "runtime": {"ros", "bags", "learn"},
    "learn": {"ros", "bags"},
    "bags": {"ros"},
    "ros": {"learn", "bags"},
    "data": {"ros", "bags", "learn"},
}
ROOT_MODULES = {"__init__", "cli", "errors", "classes", "resources"}


def _modules(wing: str) -> list[Path]:
    return sorted((PACKAGE / wing).rglob("*.py"))


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_package_root_holds_only_the_shared_modules():
    assert {p.stem for p in PACKAGE.glob("*.py")} == ROOT_MODULES
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == set(WINGS)


@pytest.mark.parametrize("wing", WINGS)
def test_imports_follow_the_data_flow(wing):
    wrong = []
    for path in _modules(wing):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "dice_seg_ros" and len(parts) > 1 and parts[1] in FORBIDDEN[wing]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("wing", ["ros", "bags"])
def test_no_module_level_torch_in_robot_wings(wing):
    wrong = [str(p.relative_to(ROOT)) for p in _modules(wing)
             if any(n.split(".")[0] == "torch" for n in _imports(p, top_level_only=True))]
    assert not wrong, f"torch imported at module level: {wrong}"


def _run_without_torch(code: str) -> subprocess.CompletedProcess:
    # sys.modules["torch"] = None makes every `import torch` raise ImportError, as on a
    # robot without torch; mcap is missing there too (no rosdep key installs it), and only
    # salvaging a damaged MCAP file needs it.
    prelude = "import sys; sys.modules['torch'] = None; sys.modules['mcap'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_ros_and_bags_modules_import_without_torch():
    pytest.importorskip("rclpy", reason="the nodes' modules need rclpy (extra ros-test)")
    modules = [f"dice_seg_ros.{wing}.{p.stem}" for wing in ("ros", "bags", "runtime")
               for p in _modules(wing) if p.stem not in ("__init__", "model")]
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = _run_without_torch(code)
    assert result.returncode == 0, result.stderr[-2000:]


def test_top_level_exports_are_lazy_and_resolve():
    import dice_seg_ros

    result = _run_without_torch(
        "import dice_seg_ros as d, sys\n"
        "assert d.Segmenter.__module__ == 'dice_seg_ros.runtime.inference'\n"
        "assert 'rclpy' not in sys.modules\n"
        "try:\n    d.DiceLoss\nexcept ImportError:\n    print('needs torch')\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "needs torch"
    for name in dice_seg_ros.__all__:
        assert getattr(dice_seg_ros, name).__name__ == name
    with pytest.raises(AttributeError, match="no_such_name"):
        dice_seg_ros.no_such_name  # noqa: B018


def test_version_comes_from_package_xml():
    import xml.etree.ElementTree as ElementTree

    import dice_seg_ros

    assert dice_seg_ros.__version__ == ElementTree.parse(ROOT / "package.xml").findtext("version")
