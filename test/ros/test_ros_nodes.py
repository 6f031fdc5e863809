"""Both nodes in-process with a real rclpy executor (skipped without a ROS 2 installation)."""

import json
import os

import numpy as np
import pytest
from conftest import rclpy_graph, shipped_model_or_skip

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy does not import: no ROS 2 installation sourced (source setup.bash)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32, Float32MultiArray, Header, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from dice_seg_ros.classes import load_classes  # noqa: E402
from dice_seg_ros.runtime.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402
from dice_seg_ros.runtime.metrics import DiceTracker, nanmean  # noqa: E402

pytestmark = pytest.mark.ros
CLASSES = load_classes()
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def ros():
    """Yield an isolated rclpy context (own domain id: parallel ROS users do not interfere)."""
    with rclpy_graph(domain_id=100 + os.getpid() % 100, timeout_s=20.0) as handles:
        yield handles


def stamped(sec, frame_id="cam"):
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, 1234
    return header


def collector(node, msg_type, topic, qos=RELIABLE):
    got = []
    node.create_subscription(msg_type, topic, got.append, qos)
    return got


def test_segmentation_node_publishes_masks_with_input_header(ros):
    shipped_model_or_skip()
    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.ros.segmentation_node import SegmentationNode

    context, add, spin_until = ros
    node = add(SegmentationNode(context=context, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("qos_reliability", value="reliable"),
        Parameter("publish_confidence", value=True),
        Parameter("diagnostics_period_s", value=0.2)]))
    helper = add(rclpy.create_node("seg_test_helper", context=context))
    camera = helper.create_publisher(Image, "image", RELIABLE)
    masks = collector(helper, Image, "/dice_seg/mask")
    colors = collector(helper, Image, "/dice_seg/mask_color")
    confidences = collector(helper, Image, "/dice_seg/confidence")
    diagnostics = collector(helper, DiagnosticArray, "/diagnostics")
    optional = node.wiring.cameras[""].optional
    assert spin_until(lambda: camera.get_subscription_count() > 0
                      and optional["confidence"].get_subscription_count() > 0)

    rgb, _ = generate_scene(3, width=80, height=60)
    camera.publish(numpy_to_image(rgb, "rgb8", stamped(42), Image))
    assert spin_until(lambda: masks and colors and confidences), "no mask published"
    mask = masks[0]
    assert (mask.header.stamp.sec, mask.header.stamp.nanosec) == (42, 1234)
    assert mask.header.frame_id == "cam" and mask.encoding == "mono8"
    expected = node.wiring.processor.segmenter.segment(rgb).class_ids
    np.testing.assert_array_equal(image_to_numpy(mask), expected)
    np.testing.assert_array_equal(image_to_numpy(colors[0]), CLASSES.palette()[expected])
    assert confidences[0].encoding == "32FC1" and confidences[0].header.stamp.sec == 42

    assert spin_until(lambda: any("fps" in {kv.key for kv in s.values}
                                  for d in diagnostics for s in d.status))

    bad = node.set_parameters([Parameter("overlay_alpha", value=1.5)])[0]
    assert not bad.successful
    assert not node.set_parameters([Parameter("backend", value="torch")])[0].successful
    assert not node.set_parameters([Parameter("qos_reliability", value="often")])[0].successful
    assert node.set_parameters([Parameter("overlay_alpha", value=0.2)])[0].successful
    assert node.wiring.processor.overlay_alpha == 0.2
    assert node.set_parameters([Parameter("publish_overlay", value=False)])[0].successful
    assert spin_until(lambda: helper.count_publishers("/dice_seg/overlay") == 0)
    assert node.set_parameters([Parameter("publish_overlay", value=True)])[0].successful
    assert spin_until(lambda: helper.count_publishers("/dice_seg/overlay") == 1)


def test_segmentation_node_refuses_bad_start_parameters(ros):
    from dice_seg_ros.ros.segmentation_node import SegmentationNode

    context, _, _ = ros
    with pytest.raises(ValueError, match="input_height"):
        SegmentationNode(context=context,
                         parameter_overrides=[Parameter("input_width", value=320)])


def label_pair(index, noise):
    rng = np.random.default_rng(index)
    target = rng.integers(0, CLASSES.num_classes, (30, 40), dtype=np.uint8)
    pred = target.copy()
    flip = rng.random(target.shape) < noise
    pred[flip] = rng.integers(0, CLASSES.num_classes, int(flip.sum()), dtype=np.uint8)
    return pred, target


def test_monitor_scores_pairs_like_dice_tracker(ros, tmp_path):
    from dice_seg_ros.ros.dice_monitor_node import DiceMonitorNode

    context, add, spin_until = ros
    node = add(DiceMonitorNode(context=context, parameter_overrides=[
        Parameter("report_dir", value=str(tmp_path / "report")),
        Parameter("window_size", value=4), Parameter("diagnostics_period_s", value=0.2)]))
    helper = add(rclpy.create_node("monitor_test_helper", context=context))
    mask_pub = helper.create_publisher(Image, "mask", RELIABLE)
    label_pub = helper.create_publisher(Image, "labels", RELIABLE)
    means = collector(helper, Float32, "/dice_monitor_node/mean_dice")
    tables = collector(helper, Float32MultiArray, "/dice_monitor_node/dice")
    diagnostics = collector(helper, DiagnosticArray, "/diagnostics")
    assert spin_until(lambda: mask_pub.get_subscription_count() > 0
                      and label_pub.get_subscription_count() > 0)

    tracker = DiceTracker(CLASSES.num_classes, CLASSES.ignore_index, window_size=4)
    pairs = 6
    for index in range(pairs):
        pred, target = label_pair(index, noise=0.3)
        tracker.update(pred, target)
        mask_pub.publish(numpy_to_image(pred, "mono8", stamped(index + 1), Image))
        label_pub.publish(numpy_to_image(target, "mono8", stamped(index + 1), Image))
        assert spin_until(lambda: len(means) == index + 1), f"pair {index} not scored"
    mask_pub.publish(numpy_to_image(pred, "mono8", stamped(500), Image))  # no partner
    assert spin_until(lambda: node.core.received["mask"] == pairs + 1)

    assert means[-1].data == pytest.approx(nanmean(tracker.window_dice()), rel=1e-6)
    table = np.asarray(tables[-1].data).reshape(4, CLASSES.num_classes)
    np.testing.assert_allclose(table[2], tracker.cumulative.dice(), rtol=1e-6)
    assert tables[-1].layout.dim[1].label.split(",") == list(CLASSES.names)
    assert node.core.unpaired == 1
    assert spin_until(lambda: any(kv.key == "dice_window/grass"
                                  for d in diagnostics for s in d.status for kv in s.values))

    client = helper.create_client(Trigger, "/dice_monitor_node/save_report")
    written = collector(helper, String, "/dice_monitor_node/report_written")
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(Trigger.Request())
    assert spin_until(future.done)
    assert future.result().success, future.result().message
    assert "report_written" in future.result().message
    # Written on the report thread while the executor went on; announced once on disk.
    assert spin_until(lambda: written)
    assert written[0].data == str((tmp_path / "report").resolve())
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["frames"] == pairs and report["unpaired"] == 1
    for class_id, name in enumerate(CLASSES.names):
        assert report["dice"][name] == pytest.approx(tracker.cumulative.dice()[class_id])


def bag_messages(bag, topics):
    """Yield (topic, rclpy message) from a rosbag2, deserialising the stored CDR with rclpy."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, _, raw in reader.messages(connections=connections):
            yield connection.topic, deserialize_message(raw, Image)


def test_nodes_on_a_bag_score_like_dice_seg_eval(ros, tmp_path):
    """Bag -> segmentation_node -> dice_monitor_node gives the report of dice-seg eval."""
    shipped_model_or_skip()
    from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
    from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
    from dice_seg_ros.ros.dice_monitor_node import DiceMonitorNode
    from dice_seg_ros.ros.segmentation_node import SegmentationNode
    from dice_seg_ros.runtime.inference import Segmenter

    frames = 5
    bag = write_synthetic_bag(tmp_path / "bag", frames, width=96, height=72, progress=False)
    evaluated = evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "eval",
                             segmenter=Segmenter(device="cpu"),
                             options=EvalOptions(output_bag=False, progress=False))
    assert evaluated.report["frames"] == frames

    context, add, spin_until = ros
    add(SegmentationNode(context=context, cli_args=["--ros-args", "-r", f"image:={IMAGE_TOPIC}"],
                         parameter_overrides=[Parameter("device", value="cpu"),
                                              Parameter("qos_reliability", value="reliable"),
                                              Parameter("qos_depth", value=frames)]))
    monitor = add(DiceMonitorNode(
        context=context,
        cli_args=["--ros-args", "-r", "mask:=/dice_seg/mask",
                  "-r", f"labels:={LABEL_TOPIC}"],
        parameter_overrides=[Parameter("report_dir", value=str(tmp_path / "monitor"))]))
    helper = add(rclpy.create_node("bag_player", context=context))
    publishers = {topic: helper.create_publisher(Image, topic, RELIABLE)
                  for topic in (IMAGE_TOPIC, LABEL_TOPIC)}
    assert spin_until(lambda: all(p.get_subscription_count() for p in publishers.values())
                      and monitor.count_publishers("/dice_seg/mask")), \
        "segmentation_node and dice_monitor_node did not subscribe to the bag topics"

    # One frame at a time, like a slow replay: the node drops no frame, so
    # both sides score every frame of the bag.
    sent = 0
    for topic, msg in bag_messages(bag, set(publishers)):
        publishers[topic].publish(msg)
        if topic == LABEL_TOPIC:
            sent += 1
            assert spin_until(lambda: monitor.core.scored == sent), \
                f"frame {sent} of the bag was not scored by dice_monitor_node"
    assert sent == frames

    report = json.loads((monitor.write_report() / "report.json").read_text())
    expected = evaluated.report
    assert (report["frames"], report["unpaired"]) == (frames, 0)
    assert report["dice"] == expected["dice"] and report["iou"] == expected["iou"]
    assert report["mean_dice"] == expected["mean_dice"]
    per_frame = (tmp_path / "monitor" / "per_frame.csv").read_text()
    assert per_frame == (tmp_path / "eval" / "per_frame.csv").read_text()


def test_namespaced_renamed_node_gets_yaml_parameters_camera_info_and_class_table(ros, tmp_path):
    """Two cameras: a renamed node in a namespace reads /** parameters, names itself fully."""
    import yaml
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import String

    from dice_seg_ros.resources import resource_path
    from dice_seg_ros.ros.segmentation_node import SegmentationNode
    shipped_model_or_skip()
    params = yaml.safe_load(resource_path("config/segmentation.yaml").read_text())
    params["/**"]["ros__parameters"].update(device="cpu", qos_reliability="reliable",
                                            overlay_alpha=0.25, diagnostics_period_s=0.2)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))

    context, add, spin_until = ros
    node = add(SegmentationNode(node_name="dice_seg", namespace="front", context=context,
                                cli_args=["--ros-args", "--params-file", str(params_file)]))
    assert node.get_parameter("overlay_alpha").value == 0.25
    helper = add(rclpy.create_node("ns_helper", context=context))
    camera = helper.create_publisher(Image, "/front/image", RELIABLE)
    info_pub = helper.create_publisher(CameraInfo, "/front/camera_info", RELIABLE)
    masks = collector(helper, Image, "/front/dice_seg/mask")
    infos = collector(helper, CameraInfo, "/front/dice_seg/camera_info")
    diagnostics = collector(helper, DiagnosticArray, "/diagnostics")
    # Subscribed long after it was published: transient-local keeps it.
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL)
    tables = collector(helper, String, "/front/dice_seg/class_table", latched)
    assert spin_until(lambda: camera.get_subscription_count() and info_pub.get_subscription_count()
                      and tables)
    assert [c["name"] for c in json.loads(tables[0].data)["classes"]] == list(CLASSES.names)

    info = CameraInfo(width=80, height=60, distortion_model="plumb_bob",
                      k=[float(i) for i in range(9)])
    info.header.frame_id = "front_optical"
    info_pub.publish(info)
    assert spin_until(lambda: node.wiring.cameras[""].camera_info is not None)
    bad = Image(header=stamped(1), height=2, width=2, encoding="bgr8", step=6, data=[0] * 5)
    camera.publish(bad)
    assert spin_until(lambda: node.wiring.worker.errors[""] == 1)
    rgb = np.zeros((60, 80, 3), np.uint8)
    camera.publish(numpy_to_image(rgb, "rgb8", stamped(7, frame_id="front_optical"), Image))
    assert spin_until(lambda: masks and infos), "node stopped after a bad frame"
    assert (masks[0].width, masks[0].height) == (80, 60)
    assert infos[0].header == masks[0].header and list(infos[0].k) == list(info.k)
    assert spin_until(lambda: any(s.name == "/front/dice_seg: segmentation"
                                  for d in diagnostics for s in d.status))
    status = next(s for d in diagnostics for s in d.status if s.name.startswith("/front/"))
    assert {"errors", "qos_incompatible", "messages_lost",
            "frames_missing_in_stamps"} <= {kv.key for kv in status.values}


def test_one_node_serves_two_cameras_under_their_namespaces(ros):
    """image_topics: each camera gets masks of its own frames, header and size, in one batch."""
    from dice_seg_ros.data.synthetic import generate_scene
    from dice_seg_ros.ros.segmentation_node import SegmentationNode
    shipped_model_or_skip()
    context, add, spin_until = ros
    node = add(SegmentationNode(node_name="dice_seg", context=context, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("qos_reliability", value="reliable"),
        Parameter("image_topics", value=["/front/image_raw", "/rear/image_raw"]),
        Parameter("diagnostics_period_s", value=0.2)]))
    helper = add(rclpy.create_node("multi_helper", context=context))
    cameras = {name: helper.create_publisher(Image, f"/{name}/image_raw", RELIABLE)
               for name in ("front", "rear")}
    masks = {name: collector(helper, Image, f"/{name}/dice_seg/mask") for name in cameras}
    colors = collector(helper, Image, "/rear/dice_seg/mask_color")
    diagnostics = collector(helper, DiagnosticArray, "/diagnostics")
    assert spin_until(lambda: all(p.get_subscription_count() for p in cameras.values())
                      and node.wiring.cameras["/rear"].optional["color"].get_subscription_count())
    assert helper.count_publishers("/dice_seg/mask") == 0, "no output outside the cameras"

    scenes = {"front": generate_scene(3, width=80, height=60)[0],
              "rear": generate_scene(4, width=64, height=48)[0]}
    for stamp, name in enumerate(cameras, start=1):
        header = stamped(100 * stamp, frame_id=f"{name}_optical")
        cameras[name].publish(numpy_to_image(scenes[name], "rgb8", header, Image))
    assert spin_until(lambda: all(masks.values()) and colors), "a camera got no mask"
    segmenter = node.wiring.processor.segmenter
    for stamp, name in enumerate(cameras, start=1):
        mask = masks[name][0]
        assert (mask.header.stamp.sec, mask.header.frame_id) == (100 * stamp, f"{name}_optical")
        assert (mask.width, mask.height) == scenes[name].shape[1::-1]
        np.testing.assert_array_equal(image_to_numpy(mask),
                                      segmenter.segment(scenes[name]).class_ids)
    assert colors[0].header.frame_id == "rear_optical"

    def camera_status(name):
        return next(({kv.key: kv.value for kv in s.values} for d in reversed(diagnostics)
                     for s in d.status if s.name == f"/dice_seg: segmentation /{name}"), None)
    assert spin_until(lambda: camera_status("front") and camera_status("rear")
                      and camera_status("rear")["frames"] == "1")
    for name in cameras:
        values = camera_status(name)
        assert values["frames"] == "1" and values["dropped_frames"] == "0"
        assert float(values["cycle_ms"]) > 0 and values["messages_lost"] == "0"
        assert "frames_missing_in_stamps" in values


def test_incompatible_qos_is_counted_and_logged(ros):
    from dice_seg_ros.ros.dice_monitor_node import DiceMonitorNode

    context, add, spin_until = ros
    node = add(DiceMonitorNode(context=context, parameter_overrides=[
        Parameter("report_dir", value=""), Parameter("qos_reliability", value="reliable")]))
    helper = add(rclpy.create_node("qos_helper", context=context))
    helper.create_publisher(Image, "mask", QoSProfile(depth=1,
                                                      reliability=ReliabilityPolicy.BEST_EFFORT))
    assert spin_until(lambda: node.events.counts["qos_incompatible"] > 0)
    assert node.log.throttle.counts["qos_incompatible/mask"] >= 1


def test_library_logging_goes_through_the_node_logger(ros, capfd):
    """Segmenter's "no GPU provider" warning is a Python log record; the node's logger shows it."""
    import logging

    from dice_seg_ros.ros.ros_plumbing import forward_library_logging

    context, add, _ = ros
    node = add(rclpy.create_node("forwarding", context=context))
    undo = forward_library_logging(node)
    try:
        logging.getLogger("dice_seg_ros.runtime.inference").warning(
            "no GPU provider in ONNX Runtime")
    finally:
        undo()
    assert "[forwarding]: no GPU provider" in capfd.readouterr().err


def test_lifecycle_node_loads_model_in_configure_and_autostarts(ros):
    from lifecycle_msgs.msg import State as StateMsg
    from rclpy.lifecycle import LifecyclePublisher

    from dice_seg_ros.ros.segmentation_node import SegmentationLifecycleNode
    shipped_model_or_skip()
    context, add, spin_until = ros
    managed = add(SegmentationLifecycleNode(context=context, parameter_overrides=[
        Parameter("device", value="cpu")]))
    assert managed.wiring.processor is None
    managed.trigger_configure()
    assert managed.wiring.processor is not None
    mask_pub = managed.wiring.cameras[""].pubs["mask"]
    # Lifecycle publishers: silent until activate, and again after deactivate.
    assert isinstance(mask_pub, LifecyclePublisher) and not mask_pub.is_activated
    managed.trigger_activate()
    assert managed._state_machine.current_state[0] == StateMsg.PRIMARY_STATE_ACTIVE
    assert mask_pub.is_activated
    assert managed.set_parameters([Parameter("publish_overlay", value=False)])[0].successful
    assert managed.set_parameters([Parameter("publish_overlay", value=True)])[0].successful
    assert managed.wiring.cameras[""].optional["overlay"].is_activated, "made while active"
    managed.trigger_deactivate()
    assert not mask_pub.is_activated
    managed.trigger_cleanup()
    assert managed.wiring.processor is None

    auto = add(SegmentationLifecycleNode(node_name="auto", context=context, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("qos_reliability", value="reliable"),
        Parameter("autostart", value=True)]))
    helper = add(rclpy.create_node("lifecycle_helper", context=context))
    camera = helper.create_publisher(Image, "image", RELIABLE)
    masks = collector(helper, Image, "/auto/mask")
    assert spin_until(lambda: camera.get_subscription_count() >= 1)
    camera.publish(numpy_to_image(np.zeros((30, 40, 3), np.uint8), "rgb8", stamped(3), Image))
    assert spin_until(lambda: masks) and auto.wiring.worker.stats[""].frames == 1
    from rclpy.lifecycle import LifecyclePublisher
    assert all(isinstance(pub, LifecyclePublisher)
               for camera in auto.wiring.cameras.values() for pub in camera.pubs.values())


def test_lifecycle_configure_fails_cleanly_on_a_bad_model(ros, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    from dice_seg_ros.ros.segmentation_node import SegmentationLifecycleNode
    context, add, _ = ros
    missing = Parameter("model_path", value=str(tmp_path / "missing.onnx"))
    managed = add(SegmentationLifecycleNode(node_name="bad_model", context=context,
                                            parameter_overrides=[missing]))
    assert managed.on_configure(None) == TransitionCallbackReturn.FAILURE
    assert managed.wiring.processor is None


def test_errors_are_throttled_per_kind_and_suppressed_ones_counted():
    from dice_seg_ros.ros.ros_plumbing import KindThrottle

    now = [0.0]
    throttle = KindThrottle(period_s=5.0, clock=lambda: now[0])
    assert throttle.admit("frame/ImageEncodingError") == 0
    assert throttle.admit("frame/ImageEncodingError") is None
    # A different error right after is not hidden by the first one's throttle.
    assert throttle.admit("pair/ValueError") == 0
    now[0] = 5.0
    assert throttle.admit("frame/ImageEncodingError") == 1
    assert throttle.counts == {"frame/ImageEncodingError": 3, "pair/ValueError": 1}


def test_calibrated_model_publishes_estimated_dice_per_camera(ros, calibrated_tiny_model,
                                                              tiny_onnx_model):
    """Two cameras (the batch path): each gets its estimate, windowed mean and status."""
    from dice_seg_ros.ros.segmentation_node import SegmentationNode
    from dice_seg_ros.runtime.inference import Segmenter

    context, add, spin_until = ros
    node = add(SegmentationNode(context=context, parameter_overrides=[
        Parameter("model_path", value=str(calibrated_tiny_model)),
        Parameter("device", value="cpu"), Parameter("qos_reliability", value="reliable"),
        Parameter("image_topics", value=["/front/image", "/rear/image"]),
        Parameter("estimated_dice_window", value=2),
        # Estimates lie in [0, 1): every window mean is under these thresholds.
        Parameter("estimated_dice_warn", value=1.0), Parameter("estimated_dice_error", value=1.0),
        Parameter("diagnostics_period_s", value=0.2)]))
    helper = add(rclpy.create_node("estimate_helper", context=context))
    cameras = {name: helper.create_publisher(Image, f"/{name}/image", RELIABLE)
               for name in ("front", "rear")}
    got = {(name, what): collector(helper, msg_type, f"/{name}/dice_seg/{what}")
           for name in cameras
           for what, msg_type in (("estimated_dice", Float32), ("estimated_dice_mean", Float32),
                                  ("estimated_dice_stamped", DiagnosticArray))}
    diagnostics = collector(helper, DiagnosticArray, "/diagnostics")
    assert spin_until(lambda: all(p.get_subscription_count() for p in cameras.values()))

    reference = Segmenter(calibrated_tiny_model, device="cpu", threads=1)
    rng = np.random.default_rng(3)
    frames = {name: [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(2)]
              for name in cameras}
    for index in range(2):
        for name, pub in cameras.items():
            pub.publish(numpy_to_image(frames[name][index], "rgb8", stamped(10 + index), Image))
        assert spin_until(lambda: all(len(messages) == index + 1 for messages in got.values())
                          ), f"frame {index}: no estimate"
    for name in cameras:
        expected = [reference.segment(rgb).estimated_dice for rgb in frames[name]]
        assert [m.data for m in got[(name, "estimated_dice")]] == pytest.approx(expected,
                                                                                rel=1e-6)
        assert got[(name, "estimated_dice_mean")][-1].data == pytest.approx(np.mean(expected),
                                                                            rel=1e-6)
        stamped_msg = got[(name, "estimated_dice_stamped")][-1]
        assert (stamped_msg.header.stamp.sec, stamped_msg.header.stamp.nanosec) == (11, 1234)
        values = {kv.key: kv.value for kv in stamped_msg.status[0].values}
        assert float(values["estimated_dice"]) == pytest.approx(expected[-1], abs=1e-6)

    def estimate_status(name):
        statuses = [s for d in diagnostics for s in d.status
                    if s.name.endswith(f"estimated dice /{name}")]
        return statuses[-1] if statuses and statuses[-1].level != b"\x03" else None
    assert spin_until(lambda: all(estimate_status(name) for name in cameras))
    for name in cameras:
        status = estimate_status(name)
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == b"\x02" and "estimated_dice_error" in status.message
        assert values["calibration"] == str(calibrated_tiny_model.with_suffix(".quality.json"))
        assert values["window_frames"] == "2"
    assert node.set_parameters([Parameter("estimated_dice_error", value=0.1)])[0].successful
    assert all(c.estimates.error_below == 0.1 for c in node.wiring.cameras.values())
    refused = node.set_parameters([Parameter("estimated_dice_warn", value=0.05)])[0]
    assert not refused.successful and "estimated_dice_warn" in refused.reason

    plain = add(SegmentationNode(node_name="uncalibrated", context=context,
                                 parameter_overrides=[
                                     Parameter("model_path", value=str(tiny_onnx_model)),
                                     Parameter("device", value="cpu")]))
    assert all(camera.estimates is None for camera in plain.wiring.cameras.values())
    assert helper.count_publishers("/uncalibrated/estimated_dice") == 0


def test_monitor_reports_estimated_beside_true_dice(ros, tmp_path, calibrated_tiny_model):
    """segmentation_node -> dice_monitor_node: estimates joined with true Dice by stamp."""
    import csv

    from dice_seg_ros.ros.dice_monitor_node import DiceMonitorNode
    from dice_seg_ros.ros.segmentation_node import SegmentationNode
    from dice_seg_ros.runtime.estimated_dice import mean_abs_error, spearman

    context, add, spin_until = ros
    seg = add(SegmentationNode(context=context, parameter_overrides=[
        Parameter("model_path", value=str(calibrated_tiny_model)),
        Parameter("device", value="cpu"), Parameter("qos_reliability", value="reliable")]))
    monitor = add(DiceMonitorNode(
        context=context,
        cli_args=["--ros-args", "-r", "mask:=/dice_seg/mask",
                  "-r", "estimated_dice_stamped:=/dice_seg/estimated_dice_stamped"],
        parameter_overrides=[Parameter("report_dir", value=str(tmp_path / "report")),
                             Parameter("estimate_dice", value=True)]))
    helper = add(rclpy.create_node("estimate_monitor_helper", context=context))
    camera = helper.create_publisher(Image, "image", RELIABLE)
    labels = helper.create_publisher(Image, "labels", RELIABLE)
    assert spin_until(lambda: camera.get_subscription_count() and labels.get_subscription_count()
                      and monitor.count_publishers("/dice_seg/estimated_dice_stamped"))

    rng = np.random.default_rng(4)
    frames = 5
    for index in range(frames):
        rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        target = rng.integers(0, CLASSES.num_classes, (30, 40), dtype=np.uint8)
        camera.publish(numpy_to_image(rgb, "rgb8", stamped(20 + index), Image))
        labels.publish(numpy_to_image(target, "mono8", stamped(20 + index), Image))
        assert spin_until(lambda: monitor.core.estimates.joined == index + 1), \
            f"frame {index}: estimate not joined with its scored frame"

    folder = monitor.write_report()
    with open(folder / "estimated_dice.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    with open(folder / "per_frame.csv", newline="") as stream:
        true = [float(row["mean_dice"]) for row in csv.DictReader(stream)]
    assert [int(r["stamp_ns"]) for r in rows] == [(20 + i) * 10**9 + 1234 for i in range(frames)]
    assert [float(r["true_mean_dice"]) for r in rows] == pytest.approx(true, abs=1e-6)
    estimated = [float(r["estimated_mean_dice"]) for r in rows]
    assert len(set(estimated)) > 1 and seg.wiring.cameras[""].estimates.frames == frames
    figures = json.loads((folder / "report.json").read_text())["estimated_dice"]
    assert figures["frames"] == frames
    assert figures["mae"] == pytest.approx(mean_abs_error(estimated, true), abs=1e-6)
    assert figures["spearman"] == pytest.approx(spearman(np.array(estimated), np.array(true)))
    assert (folder / "estimated_vs_true_dice.png").stat().st_size > 0


@pytest.mark.parametrize("camera_reliability, expected", [
    (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.RELIABLE),
    (ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.BEST_EFFORT),
])
def test_auto_reliability_follows_the_camera(ros, tiny_onnx_model, camera_reliability,
                                             expected):
    from dice_seg_ros.ros.segmentation_node import SegmentationNode

    context, add, spin_until = ros
    node = add(SegmentationNode(context=context, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("model_path", value=str(tiny_onnx_model))]))
    assert node.get_parameter("qos_reliability").value == "auto"
    helper = add(rclpy.create_node("auto_qos_helper", context=context))
    helper.create_publisher(Image, "image", QoSProfile(depth=1, reliability=camera_reliability))

    def subscribed_with():
        infos = helper.get_subscriptions_info_by_topic("/image")
        return infos[0].qos_profile.reliability if len(infos) == 1 else None
    assert spin_until(lambda: subscribed_with() == expected, timeout=10.0)


def test_reliability_for_publishers():
    from dice_seg_ros.ros.node_params import reliability_for

    assert reliability_for([]) is None
    assert reliability_for(["reliable", "reliable"]) == "reliable"
    assert reliability_for(["reliable", "best_effort"]) == "best_effort"


def test_a_misspelt_parameter_is_named_in_a_warning(ros, tiny_onnx_model):
    from dice_seg_ros.ros.ros_plumbing import warn_undeclared_overrides
    from dice_seg_ros.ros.segmentation_node import SegmentationNode

    context, add, _ = ros
    node = add(SegmentationNode(context=context, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("model_path", value=str(tiny_onnx_model)),
        Parameter("overlay_alpah", value=0.3)]))
    assert warn_undeclared_overrides(node) == ["overlay_alpah"]
