"""Each launch file brings its nodes up and they publish masks (skipped without ROS 2).

The package is made findable the way colcon installs it: a throw-away ament
prefix holding the package marker, the share folders (linked to this checkout)
and a ``lib/dice_seg_ros/segmentation_node`` launcher.
"""

import asyncio
import csv
import json
import logging
import os
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import shipped_model_or_skip

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy does not import: no ROS 2 installation sourced (source setup.bash)")
launch = pytest.importorskip("launch", reason="the ROS 2 launch package is not installed")
pytest.importorskip("launch_ros", reason="the ROS 2 launch_ros package is not installed")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dice_seg_ros.runtime.image_conversion import numpy_to_image  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "dice_seg_ros"
PROBE_TIMEOUT_S = 60.0
# launch escalates SIGINT -> SIGTERM -> SIGKILL within ~10 s; allow for a slow machine.
SHUTDOWN_TIMEOUT_S = 30.0


def ament_prefix(prefix):
    """Lay out ``prefix`` like a colcon install of this checkout; return it."""
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / PACKAGE).touch()
    share = prefix / "share" / PACKAGE
    share.mkdir()
    for name in ("launch", "config", "rviz", "models", "package.xml"):
        if (ROOT / name).exists():
            (share / name).symlink_to(ROOT / name)
    lib = prefix / "lib" / PACKAGE
    lib.mkdir(parents=True)
    for module in ("segmentation_node", "dice_monitor_node"):
        path = lib / module
        path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                        f"from dice_seg_ros.ros.{module} import main\nsys.exit(main())\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return prefix


# launch file, its arguments, {camera image topic: mask topic it must produce}
LAUNCHES = {
    "segmentation": ("segmentation.launch.py",
                     {"image_topic": "/test_cam/image_raw", "device": "cpu"},
                     {"/test_cam/image_raw": "/camera/dice_seg/mask"}),
    "two_cameras": ("two_cameras.launch.py",
                    {"front": "/test_front/image_raw", "rear": "/test_rear/image_raw",
                     "device": "cpu"},
                    {"/test_front/image_raw": "/front/dice_seg/mask",
                     "/test_rear/image_raw": "/rear/dice_seg/mask"}),
    "multi_camera": ("multi_camera.launch.py",
                     {"image_topics": "/mc_front/image_raw,/mc_rear/image_raw", "device": "cpu"},
                     {"/mc_front/image_raw": "/mc_front/dice_seg/mask",
                      "/mc_rear/image_raw": "/mc_rear/dice_seg/mask"}),
}


def frame_id(image_topic):
    """Return the frame_id the probe stamps on ``image_topic``'s frames (one per camera)."""
    return image_topic.strip("/").replace("/", "_")


@pytest.mark.parametrize("case", sorted(LAUNCHES))
def test_launch_file_publishes_masks(case, tmp_path, monkeypatch):
    shipped_model_or_skip()
    launch_file, arguments, mask_topics = LAUNCHES[case]
    prefix = ament_prefix(tmp_path / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH",
                       f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}")
    domain = str(150 + (os.getpid() + sorted(LAUNCHES).index(case)) % 80)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=int(domain))
    node = rclpy.create_node("launch_test_probe", context=context)
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    cameras = {topic: node.create_publisher(Image, topic, reliable) for topic in mask_topics}
    masks = {topic: [] for topic in mask_topics.values()}
    for topic, received in masks.items():
        node.create_subscription(Image, topic, received.append, reliable)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    result = {}
    stop = threading.Event()

    def probe():
        """Publish frames until every mask topic got one, the launch ends or the timeout."""
        frames = {}
        for topic in cameras:
            header = Header(frame_id=frame_id(topic))
            header.stamp.sec = 7
            frames[topic] = numpy_to_image(np.full((48, 64, 3), 90, np.uint8), "rgb8", header,
                                           Image)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while (not all(masks.values()) and not stop.is_set()
               and time.monotonic() < deadline):
            for topic, camera in cameras.items():
                if camera.get_subscription_count():
                    camera.publish(frames[topic])
            executor.spin_once(timeout_sec=0.2)
        result["masks"] = {topic: list(received) for topic, received in masks.items()}

    async def scenario():
        service = launch.LaunchService()
        service.include_launch_description(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(ROOT / "launch" / launch_file)),
            launch_arguments=arguments.items()))
        running = asyncio.ensure_future(service.run_async())
        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        while worker.is_alive() and not running.done():
            await asyncio.sleep(0.2)
        stop.set()
        result["ended_early"] = running.done()
        # Called inside the loop, shutdown() only returns the coroutine that emits
        # the Shutdown event: without awaiting it the node is never stopped.
        stopping = service.shutdown()
        if stopping is not None:
            await stopping
        return await asyncio.wait_for(running, SHUTDOWN_TIMEOUT_S)

    try:
        exit_code = asyncio.run(scenario())
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert not result["ended_early"], (
        f"{launch_file} ended (exit code {exit_code}) before every mask came back")
    silent = [topic for topic, received in result["masks"].items() if not received]
    assert not silent, (
        f"{launch_file} published no mask on {silent} within {PROBE_TIMEOUT_S:.0f} s of "
        f"frames on {list(mask_topics)}")
    assert exit_code == 0, f"launch service exited with {exit_code}"
    for image_topic, mask_topic in mask_topics.items():
        mask = result["masks"][mask_topic][0]
        assert mask.header.stamp.sec == 7 and mask.header.frame_id == frame_id(image_topic)
        assert (mask.width, mask.height, mask.encoding) == (64, 48, "mono8")


def test_use_rviz_without_rviz2_warns_and_starts_no_rviz(tmp_path, monkeypatch):
    """use_rviz:=true where rviz2 is not installed gives a warning, not a failed launch."""
    from importlib.util import module_from_spec, spec_from_file_location

    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    prefix = ament_prefix(tmp_path / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH",
                       f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}")
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        pass
    else:
        pytest.skip("rviz2 is installed: use_rviz:=true would start it")
    spec = spec_from_file_location("segmentation_launch",
                                   ROOT / "launch" / "segmentation.launch.py")
    segmentation_launch = module_from_spec(spec)
    spec.loader.exec_module(segmentation_launch)
    context = launch.LaunchContext()
    context.launch_configurations["use_rviz"] = "true"
    # launch's loggers do not propagate to the root logger, so caplog cannot see them.
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = launch.logging.get_logger("launch.user")
    logger.addHandler(handler)
    try:
        actions = segmentation_launch._rviz(context)
    finally:
        logger.removeHandler(handler)

    assert actions == []
    assert any("rviz2 is not installed" in r.getMessage() for r in records), records


def per_frame_rows(path):
    """Return a per_frame.csv as {stamp_ns: {column: float}} (frame and stamp columns left out)."""
    with open(path, newline="") as stream:
        return {int(row.pop("stamp_ns")): {k: float(v) for k, v in row.items() if k != "frame"}
                for row in csv.DictReader(stream)}


def test_evaluate_bag_launch_scores_like_eval(tmp_path, monkeypatch):
    pytest.importorskip("ros2bag", reason="rosbag2 is not installed: evaluate_bag.launch.py "
                                          "plays the bag with `ros2 bag play`")
    from conftest import shipped_model_or_skip

    from dice_seg_ros.cli import main as dice_seg

    shipped_model_or_skip()
    bag, offline, online = tmp_path / "bag", tmp_path / "eval", tmp_path / "report"
    assert dice_seg(["make-bag", "--out", str(bag), "--frames", "6", "--width", "64",
                     "--height", "48"]) == 0
    assert dice_seg(["eval", "--bag", str(bag), "--image-topic", "/camera/image_raw",
                     "--label-topic", "/camera/labels", "--out", str(offline), "--device", "cpu",
                     "--no-output-bag", "--no-progress"]) == 0
    prefix = ament_prefix(tmp_path / "install")
    monkeypatch.setenv("AMENT_PREFIX_PATH",
                       f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(150 + (os.getpid() + len(LAUNCHES)) % 80))

    service = launch.LaunchService()
    service.include_launch_description(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(ROOT / "launch" / "evaluate_bag.launch.py")),
        launch_arguments={"bag": str(bag), "report_dir": str(online), "rate": "0.2",
                          "device": "cpu", "drain_s": "2.0"}.items()))
    # The launch ends by itself drain_s after the bag has played.
    exit_code = asyncio.run(asyncio.wait_for(service.run_async(), PROBE_TIMEOUT_S))
    assert exit_code == 0
    report = json.loads((online / "report.json").read_text())
    scored, expected = per_frame_rows(online / "per_frame.csv"), per_frame_rows(
        offline / "per_frame.csv")
    assert scored and report["frames"] == len(scored)
    for stamp, row in scored.items():
        assert row.keys() == expected[stamp].keys()
        np.testing.assert_allclose(list(row.values()), list(expected[stamp].values()),
                                   atol=1e-6, err_msg=f"frame at {stamp} ns")
