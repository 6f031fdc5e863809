"""The installed console scripts as processes, as `ros2 run` starts them (needs rclpy)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import rclpy_graph, shipped_model_or_skip

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy does not import: no ROS 2 installation sourced (source setup.bash)")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32, Header  # noqa: E402

from dice_seg_ros.runtime.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
DOMAIN = 100 + (os.getpid() + 37) % 100


def script(name):
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"console script {name} not installed (pip install -e .)")
    return path


@pytest.fixture
def graph():
    """Yield (helper node, spin_until, start) in a domain of this test module's own."""
    procs = []

    def start(name, *ros_args):
        env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([script(name), "--ros-args", *ros_args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    with rclpy_graph(domain_id=DOMAIN, timeout_s=30.0) as (context, add, spin_until):
        node = add(rclpy.create_node("process_test_helper", context=context))
        yield node, spin_until, start
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def stamped(sec):
    header = Header(frame_id="cam")
    header.stamp.sec = sec
    return header


def scored_monitor(graph, report_dir):
    """Start dice_monitor_node as /proc, score three perfect pairs; return the process."""
    node, spin_until, start = graph
    proc = start("dice_monitor_node", "-r", "__ns:=/proc", "-p", f"report_dir:={report_dir}")
    masks = node.create_publisher(Image, "/proc/mask", RELIABLE)
    labels = node.create_publisher(Image, "/proc/labels", RELIABLE)
    means = []
    node.create_subscription(Float32, "/proc/dice_monitor_node/mean_dice", means.append,
                             RELIABLE)
    assert spin_until(lambda: masks.get_subscription_count() and labels.get_subscription_count()
                      and node.count_publishers("/proc/dice_monitor_node/mean_dice")), \
        proc.stdout.read() if proc.poll() is not None else "monitor did not subscribe"
    target = np.arange(12, dtype=np.uint8).reshape(3, 4) % 6
    for sec in range(1, 4):
        masks.publish(numpy_to_image(target, "mono8", stamped(sec), Image))
        labels.publish(numpy_to_image(target, "mono8", stamped(sec), Image))
        assert spin_until(lambda: len(means) == sec)
    assert (report_dir / "per_frame.csv").is_file()  # streamed while running
    return proc


def assert_full_report(report_dir, proc):
    """Check the process exited 0 after writing the report of the three pairs."""
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    report = json.loads((report_dir / "report.json").read_text())
    assert report["frames"] == 3 and report["mean_dice"] == 1.0, out
    assert len((report_dir / "per_frame.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_monitor_process_writes_its_report_on_signal(graph, tmp_path, signum):
    report_dir = tmp_path / "report"
    proc = scored_monitor(graph, report_dir)
    proc.send_signal(signum)
    assert_full_report(report_dir, proc)


def test_repeated_sigint_does_not_interrupt_the_report(graph, tmp_path):
    # Ctrl-C on `ros2 launch` in a terminal reaches every node twice: the
    # terminal signals the whole process group and launch forwards its own
    # SIGINT. The second one must not cut the report or the node's cleanup.
    report_dir = tmp_path / "report"
    proc = scored_monitor(graph, report_dir)
    deadline = time.monotonic() + 20.0
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    assert_full_report(report_dir, proc)


def test_segmentation_process_publishes_the_segmenter_mask(graph):
    shipped_model_or_skip()
    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.runtime.inference import Segmenter

    node, spin_until, start = graph
    proc = start("segmentation_node", "-r", "__ns:=/cam", "-r", "__node:=dice_seg",
                 "-p", "device:=cpu", "-p", "qos_reliability:=reliable")
    camera = node.create_publisher(Image, "/cam/image", RELIABLE)
    masks = []
    node.create_subscription(Image, "/cam/dice_seg/mask", masks.append, RELIABLE)
    assert spin_until(lambda: camera.get_subscription_count()
                      and node.count_publishers("/cam/dice_seg/mask")), \
        proc.stdout.read() if proc.poll() is not None else "node did not subscribe"
    rgb, _ = generate_scene(5, width=64, height=48)
    camera.publish(numpy_to_image(rgb, "rgb8", stamped(9), Image))
    assert spin_until(lambda: masks)
    assert masks[0].header.stamp.sec == 9 and (masks[0].width, masks[0].height) == (64, 48)
    expected = Segmenter(device="cpu").segment(rgb).class_ids
    np.testing.assert_array_equal(image_to_numpy(masks[0]), expected)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_bad_start_parameter_is_one_line_and_exit_code_1(graph):
    _, _, start = graph
    proc = start("dice_monitor_node", "-p", "ema_alpha:=0.0")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "ema_alpha=0.0 is outside" in out and "Traceback" not in out


def test_node_soak_benchmark_quick_run():
    """The soak benchmark's quick mode: both nodes as processes, every frame scored."""
    script("segmentation_node")
    shipped_model_or_skip()
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_node_soak.py"
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    # Its own session: a timeout kills the benchmark and the node processes it started,
    # which would otherwise outlive the test and load the machine.
    proc = subprocess.Popen([sys.executable, str(bench), "--frames", "200", "--every", "100"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1") or
            line.startswith("| 2")]
    assert [row.split("|")[1].strip() for row in rows] == ["100", "200"], done.stdout
    assert "timeouts: 0 of 200 frames" in done.stdout
    assert "segmentation_node: RSS" in done.stdout and "dice_monitor_node: RSS" in done.stdout


def test_sigint_while_frames_flow_ends_without_publishing_into_a_dead_context(graph):
    # The worker may finish a frame after the signal shut the context down; that
    # frame is dropped quietly instead of failing with "publisher's context is invalid".
    shipped_model_or_skip()
    node, spin_until, start = graph
    proc = start("segmentation_node", "-r", "__ns:=/busy", "-p", "device:=cpu",
                 "-p", "qos_reliability:=reliable")
    camera = node.create_publisher(Image, "/busy/image", RELIABLE)
    masks = []
    node.create_subscription(Image, "/busy/dice_seg/mask", masks.append, RELIABLE)
    assert spin_until(lambda: camera.get_subscription_count()), "node did not subscribe"
    frame = np.zeros((240, 320, 3), np.uint8)
    for index in range(40):
        camera.publish(numpy_to_image(frame, "rgb8", stamped(index), Image))
        spin_until(lambda: False, timeout=0.01)
        if index == 30:
            proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert masks and proc.returncode == 0, out
    assert "context is invalid" not in out and "Traceback" not in out, out


def test_a_misspelt_parameter_is_named_in_a_warning(graph, tmp_path):
    node, spin_until, start = graph
    proc = start("dice_monitor_node", "-r", "__ns:=/typo", "-p", f"report_dir:={tmp_path}",
                 "-p", "windw_size:=4")
    assert spin_until(lambda: node.count_subscribers("/typo/mask") > 0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    warning = [line for line in out.splitlines() if "this node does not have" in line]
    assert len(warning) == 1 and "windw_size" in warning[0], out
