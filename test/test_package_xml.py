"""package.xml declares every ROS package the code imports or launches (ast scan, no ROS)."""

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ROS packages that are Python modules but follow no *_msgs naming rule.
ROS_PYTHON_PACKAGES = {
    "rclpy", "message_filters", "launch", "launch_ros", "launch_testing", "launch_testing_ros",
    "launch_pytest", "ament_index_python", "cv_bridge", "rosidl_runtime_py", "rosbag2_py",
    "tf2_ros", "image_transport", "rcl_interfaces", "builtin_interfaces", "ros2cli",
}
ROS_INTERFACE_SUFFIX = re.compile(r"_(msgs|srvs|interfaces|actions)$")
# Not needed by a headless ONNX Runtime robot: named in a package.xml comment
# (and README) instead of <exec_depend>, so rosdep does not install them there.
OPTIONAL = {"rviz2", "ros2bag", "vision_msgs", "python3-torch", "tf2_ros"}
NEVER = {"cv_bridge", "message_filters", "rviz2", "python3-torch"}


def package_xml():
    return ET.parse(ROOT / "package.xml").getroot()


def dependencies(*tags):
    root = package_xml()
    return {e.text.strip() for tag in tags for e in root.findall(tag)}


def imported_modules(paths):
    """Map each top-level imported module to the files importing it."""
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def ros_packages(modules):
    return {m: files for m, files in modules.items()
            if m in ROS_PYTHON_PACKAGES or ROS_INTERFACE_SUFFIX.search(m)}


def product_files():
    return [*sorted((ROOT / "dice_seg_ros").rglob("*.py")),
            *sorted((ROOT / "launch").glob("*.launch.py"))]


def launched_packages():
    """Return packages started by the launch files: Node(package=...) and `ros2 VERB` commands."""
    found = {}
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        tree = ast.parse(path.read_text())
        constants = {n.targets[0].id: n.value.value for n in tree.body
                     if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                     and isinstance(n.targets[0], ast.Name)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", None))
            for kw in node.keywords:
                if called == "Node" and kw.arg == "package":
                    package = (constants.get(kw.value.id) if isinstance(kw.value, ast.Name)
                               else kw.value.value)
                    found.setdefault(package, set()).add(path.name)
                if called == "ExecuteProcess" and kw.arg == "cmd":
                    words = [e.value for e in kw.value.elts[:2] if isinstance(e, ast.Constant)]
                    if len(words) == 2 and words[0] == "ros2":
                        found.setdefault(f"ros2{words[1]}", set()).add(path.name)
    return found


def test_package_xml_identity():
    root = package_xml()
    assert root.get("format") == "3"
    assert root.findtext("name") == "dice_seg_ros"
    assert root.find("export/build_type").text == "ament_python"
    # setup.py takes the version from package.xml: one place to bump it.
    version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.split()[-1]
    assert version == root.findtext("version")


def test_every_imported_ros_package_is_an_exec_depend():
    imported = ros_packages(imported_modules(product_files()))
    assert {"rclpy", "sensor_msgs"} <= set(imported), "scan found no ROS use"
    missing = {m: sorted(f) for m, f in imported.items()
               if m not in dependencies("exec_depend", "depend") | OPTIONAL}
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"


def test_every_launched_package_is_an_exec_depend():
    launched = launched_packages()
    assert {"dice_seg_ros", "rviz2", "ros2bag"} <= set(launched)
    launched.pop("dice_seg_ros")
    missing = {p: sorted(f) for p, f in launched.items()
               if p not in dependencies("exec_depend", "depend") | OPTIONAL}
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"


def test_ros_packages_used_by_tests_are_declared():
    tests = sorted((ROOT / "test").glob("*.py"))
    imported = ros_packages(imported_modules(tests))
    declared = dependencies("exec_depend", "depend", "test_depend")
    missing = {m: sorted(f) for m, f in imported.items() if m not in declared}
    assert not missing, f"package.xml lacks <test_depend> for {missing}"


def test_headless_robot_gets_no_desktop_or_unused_packages():
    exec_depends = dependencies("exec_depend", "depend")
    assert not exec_depends & NEVER, f"rosdep would install {exec_depends & NEVER} on a robot"
    comments = (ROOT / "package.xml").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in OPTIONAL:
        assert name in comments and name in readme, f"optional {name} is not documented"


def test_nodes_do_not_import_each_other():
    modules = imported_modules([ROOT / "dice_seg_ros" / "ros" / "segmentation_node.py",
                                ROOT / "dice_seg_ros" / "ros" / "dice_monitor_node.py"])
    text = {p.name: p.read_text() for p in (ROOT / "dice_seg_ros" / "ros").glob("*_node.py")}
    assert "dice_monitor_node" not in text["segmentation_node.py"]
    assert "segmentation_node" not in text["dice_monitor_node.py"]
    assert "message_filters" not in modules


def test_ros_imports_stay_in_node_modules_and_launch_files():
    allowed = {"segmentation_node.py", "dice_monitor_node.py", "ros_plumbing.py",
               "resources.py"}
    for module, files in ros_packages(imported_modules(product_files())).items():
        stray = {f for f in files if f not in allowed and not f.endswith(".launch.py")}
        assert not stray, f"{module} imported outside the node modules: {sorted(stray)}"
