"""Launch files, parameter YAMLs and the RViz layout agree with the code (no ROS needed)."""

import ast
import glob
from pathlib import Path

import pytest
import yaml

from dice_seg_ros.bags.evaluate import output_topics
from dice_seg_ros.ros.multi_camera import camera_topics
from dice_seg_ros.runtime import outputs
from dice_seg_ros.runtime.outputs import OUTPUTS
from dice_seg_ros.ros.node_params import (DEFAULT_IMAGE_TOPICS, MONITOR_NODE, MONITOR_PARAMS,
                                          NODE_PARAMS, SEGMENTATION_NODE, SEGMENTATION_PARAMS,
                                          defaults, spec_map, validate, validate_all)

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
CONFIG_FILES = {SEGMENTATION_NODE: ROOT / "config" / "segmentation.yaml",
                MONITOR_NODE: ROOT / "config" / "monitor.yaml"}
NODE_MODULES = {SEGMENTATION_NODE: ROOT / "dice_seg_ros" / "ros" / "segmentation_node.py",
                MONITOR_NODE: ROOT / "dice_seg_ros" / "ros" / "dice_monitor_node.py"}


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def calls(tree, name):
    """Yield every call of a function or class called ``name`` (bare or attribute)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                yield node


def keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def strings(tree):
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def setup_kwargs():
    call = next(calls(parse(ROOT / "setup.py"), "setup"))
    return {kw.arg: kw.value for kw in call.keywords}


def console_scripts():
    entry_points = literal(setup_kwargs()["entry_points"])
    return {line.split("=")[0].strip(): line.split("=")[1].strip()
            for line in entry_points["console_scripts"]}


def installed_globs():
    """Return the share-relative glob patterns setup.py installs (e.g. config/*.yaml)."""
    patterns = set()
    for call in calls(parse(ROOT / "setup.py"), "glob"):
        patterns.add(literal(call.args[0]))
    return patterns


def share_files(tree):
    """Return share-relative paths built as os.path.join(SHARE, "dir", "file") in a launch file."""
    found = set()
    for call in calls(tree, "join"):
        parts = [literal(a) for a in call.args[1:]]
        if isinstance(call.args[0], ast.Name) and call.args[0].id == "SHARE" \
                and parts and all(isinstance(p, str) for p in parts):
            found.add("/".join(parts))
    return found


def published_topics(node_name):
    """Return the topics a node publishes on with default parameters (``~/...``, /diagnostics).

    The segmentation node's come from its camera's output names (one camera on
    ``image`` by default), each of which its module must use.
    """
    if node_name == SEGMENTATION_NODE:
        (camera,) = camera_topics(DEFAULT_IMAGE_TOPICS, node_name)
        used = {getattr(outputs, n.attr) for n in ast.walk(parse(NODE_MODULES[node_name]))
                if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "outputs"}
        assert set(OUTPUTS) <= used
        return {camera.output(name) for name in OUTPUTS} | {"/diagnostics"}
    return {s for s in strings(parse(NODE_MODULES[node_name]))
            if s.startswith("~/") or s == "/diagnostics"}


def test_launch_files_exist_and_compile():
    names = {p.name for p in LAUNCH_FILES}
    assert {"segmentation.launch.py", "evaluate_bag.launch.py"} <= names
    for path in LAUNCH_FILES:
        compile(path.read_text(), str(path), "exec")
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
                   for n in parse(path).body), f"{path.name}: no generate_launch_description()"


def test_console_scripts_point_at_main_functions():
    scripts = console_scripts()
    for name in (SEGMENTATION_NODE, MONITOR_NODE):
        module, func = scripts[name].split(":")
        tree = parse(ROOT / (module.replace(".", "/") + ".py"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_nodes_name_existing_executables(path):
    scripts = console_scripts()
    tree = parse(path)
    nodes = list(calls(tree, "Node"))
    assert nodes or list(calls(tree, "IncludeLaunchDescription")), f"{path.name} starts nothing"
    for node in nodes:
        package = keyword(node, "package")
        executable = literal(keyword(node, "executable"))
        if isinstance(package, ast.Name) and package.id == "PACKAGE":
            assert executable in scripts, f"{path.name}: unknown executable {executable!r}"
        else:
            assert (literal(package), executable) == ("rviz2", "rviz2")


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_declare_every_argument_they_use(path):
    tree = parse(path)
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    used = {literal(c.args[0]) for c in calls(tree, "LaunchConfiguration")
            if isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"{path.name} uses undeclared arguments {used - declared}"


def test_segmentation_launch_names_the_node_from_arguments():
    tree = parse(ROOT / "launch" / "segmentation.launch.py")
    node = next(calls(tree, "Node"))
    for key in ("name", "namespace"):
        value = keyword(node, key)
        assert isinstance(value, ast.Call) and literal(value.args[0]) == key


def test_two_camera_example_runs_one_namespace_per_camera():
    tree = parse(ROOT / "launch" / "two_cameras.launch.py")
    cameras = next(literal(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and n.targets[0].id == "CAMERAS")
    assert len(set(cameras)) == 2
    assert "namespace" in strings(tree) and "segmentation.launch.py" in strings(tree)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_share_files_exist_and_are_installed(path):
    files = share_files(parse(path))
    assert files, f"{path.name} references no config/rviz/launch file"
    patterns = installed_globs()
    for rel in files:
        assert (ROOT / rel).is_file(), f"{path.name} references missing {rel}"
        assert any(Path(rel).match(p) for p in patterns), f"{rel} is not installed by setup.py"


def test_segmentation_launch_arguments_and_overrides():
    tree = parse(ROOT / "launch" / "segmentation.launch.py")
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert {"image_topic", "model_path", "backend", "device", "use_compressed",
            "use_rviz", "namespace", "name"} <= declared
    overridable = next(literal(n.value) for n in tree.body if isinstance(n, ast.Assign)
                       and n.targets[0].id == "OVERRIDABLE")
    assert set(overridable) <= set(spec_map(SEGMENTATION_PARAMS))
    assert set(overridable) <= declared
    remapped = {literal(t.elts[0]) for c in calls(tree, "Node")
                for t in getattr(keyword(c, "remappings"), "elts", [])}
    assert remapped == {"image", "image/compressed", "camera_info"}
    (plain,) = camera_topics(DEFAULT_IMAGE_TOPICS, SEGMENTATION_NODE)
    (compressed,) = camera_topics(DEFAULT_IMAGE_TOPICS, SEGMENTATION_NODE, compressed=True)
    assert remapped == {plain.image, compressed.image, plain.camera_info}


def test_evaluate_bag_wiring():
    tree = parse(ROOT / "launch" / "evaluate_bag.launch.py")
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert {"bag", "report_dir", "use_rviz"} <= declared
    consts = {n.targets[0].id: literal(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    assert consts["IMAGE_TOPIC"] == "/camera/image_raw"
    assert consts["LABELS_TOPIC"] == "/camera/labels"
    monitor = next(c for c in calls(tree, "Node")
                   if literal(keyword(c, "executable")) == MONITOR_NODE)
    remaps = {literal(t.elts[0]): t.elts[1] for t in keyword(monitor, "remappings").elts}
    assert set(remaps) == {"mask", "labels"}
    assert isinstance(remaps["mask"], ast.Name) and remaps["mask"].id == "MASK_TOPIC"
    assert (f"/{consts['SEGMENTATION_NAMESPACE']}/{consts['SEGMENTATION_NAME']}/mask"
            == output_topics(consts["IMAGE_TOPIC"])["mask"])
    assert "~/mask" in published_topics(SEGMENTATION_NODE)
    overrides = [e for e in keyword(monitor, "parameters").elts if isinstance(e, ast.Dict)]
    keys = {literal(k) for d in overrides for k in d.keys}
    assert keys and keys <= set(spec_map(MONITOR_PARAMS))
    play = next(calls(tree, "ExecuteProcess"))
    assert [literal(e) for e in keyword(play, "cmd").elts[:3]] == ["ros2", "bag", "play"]
    assert list(calls(tree, "OnProcessExit")) and list(calls(tree, "Shutdown"))


def test_evaluate_bag_subscribes_to_the_bag_reliably():
    # Best effort (the live-camera default) lost most 640x480 frames of a replay.
    tree = parse(ROOT / "launch" / "evaluate_bag.launch.py")
    include = next(calls(tree, "IncludeLaunchDescription"))
    passed = keyword(include, "launch_arguments").func.value
    arguments = {literal(k): literal(v) for k, v in zip(passed.keys, passed.values)}
    assert arguments["qos_reliability"] == "reliable"
    segmentation = parse(ROOT / "launch" / "segmentation.launch.py")
    overridable = next(literal(n.value) for n in segmentation.body if isinstance(n, ast.Assign)
                       and n.targets[0].id == "OVERRIDABLE")
    assert "qos_reliability" in overridable


@pytest.mark.parametrize("node_name", sorted(CONFIG_FILES))
def test_yaml_lists_every_parameter_with_its_default(node_name):
    doc = yaml.safe_load(CONFIG_FILES[node_name].read_text())
    # "/**": the values reach the node under any name and namespace (several cameras).
    assert list(doc) == ["/**"]
    values = doc["/**"]["ros__parameters"]
    expected = defaults(NODE_PARAMS[node_name])
    assert set(values) == set(expected), "YAML and node_params must list the same parameters"
    for name, default in expected.items():
        assert values[name] == default and type(values[name]) is type(default), name
    assert validate_all(NODE_PARAMS[node_name], values) is None


@pytest.mark.parametrize("node_name", sorted(NODE_MODULES))
def test_nodes_declare_from_the_specs(node_name):
    tree = parse(NODE_MODULES[node_name])
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    specs = "SEGMENTATION_PARAMS" if node_name == SEGMENTATION_NODE else "MONITOR_PARAMS"
    assert specs in used and "declare_specs" in used


def test_rviz_layout_shows_published_topics():
    doc = yaml.safe_load((ROOT / "rviz" / "dice_seg.rviz").read_text())
    displays = doc["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    # One naming scheme: the node as /camera/dice_seg and eval's output bag agree.
    published = {f"/camera/dice_seg/{t[2:]}" for t in published_topics(SEGMENTATION_NODE)
                 if t.startswith("~/")}
    eval_topics = output_topics("/camera/image_raw")
    assert "/camera/image_raw" in topics
    assert {eval_topics["mask_color"], eval_topics["overlay"]} <= topics
    assert topics - {"/camera/image_raw"} <= published & set(eval_topics.values())
    from dice_seg_ros.bags.synthetic_bag import FRAME_ID
    assert doc["Visualization Manager"]["Global Options"]["Fixed Frame"] == FRAME_ID


def test_installed_data_globs_cover_config_launch_rviz():
    patterns = installed_globs()
    for path in (*CONFIG_FILES.values(), *LAUNCH_FILES, ROOT / "rviz" / "dice_seg.rviz"):
        rel = path.relative_to(ROOT)
        assert any(rel.match(p) for p in patterns), f"{rel} not installed"
        assert glob.glob(str(ROOT / rel))


SEG = spec_map(SEGMENTATION_PARAMS)
MON = spec_map(MONITOR_PARAMS)


@pytest.mark.parametrize("spec, value, fragment", [
    (SEG["backend"], "tensorrt", "not one of"),
    (SEG["overlay_alpha"], 1.5, "outside"),
    (SEG["overlay_alpha"], "0.5", "expected double"),
    (SEG["qos_depth"], 0, "outside"),
    (SEG["qos_depth"], 2.0, "expected integer"),
    (SEG["use_compressed"], 1, "expected bool"),
    (SEG["providers"], ["CUDA"], "ExecutionProvider"),
    (SEG["providers"], [], "empty"),
    (SEG["image_topics"], None, "image_topics is empty; give at least one value"),
    (MON["ema_alpha"], 0.0, "outside (0.0"),
    (MON["label_format"], "rgb", "not one of"),
])
def test_validate_rejects_with_reason(spec, value, fragment):
    reason = validate(spec, value)
    assert reason and fragment in reason and spec.name in reason


def test_validate_accepts_good_values():
    assert validate(SEG["overlay_alpha"], 1) is None
    assert validate(SEG["providers"], ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    assert validate(MON["ema_alpha"], 1.0) is None


def test_validate_all_checks_relations():
    seg = defaults(SEGMENTATION_PARAMS)
    assert "input_height" in validate_all(SEGMENTATION_PARAMS, {**seg, "input_width": 320})
    assert validate_all(SEGMENTATION_PARAMS,
                        {**seg, "input_width": 320, "input_height": 240}) is None
    assert "must not exceed estimated_dice_warn" in validate_all(
        SEGMENTATION_PARAMS, {**seg, "estimated_dice_error": 0.7, "estimated_dice_warn": 0.6})
    mon = defaults(MONITOR_PARAMS)
    assert "error_below" in validate_all(MONITOR_PARAMS, {**mon, "error_below": 0.9})
    assert "unknown parameter" in validate_all(MONITOR_PARAMS, {"nope": 1})
