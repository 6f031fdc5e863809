"""rclpy node: camera images in, class-id mask, colour mask, overlay and confidence out.

Only ROS wiring lives here: parameters, QoS, publishers and message types.
Frame handling (conversion, inference, the latest-frame worker, statistics)
is ``segmentation_core``, the same code ``dice-seg eval`` runs.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dice_seg_ros.classes import load_classes
from dice_seg_ros.errors import DiceSegError
from dice_seg_ros.inference import Segmenter
from dice_seg_ros.node_params import (AUTO_PROVIDERS, SEGMENTATION_NODE, SEGMENTATION_PARAMS,
                                      ParamSpec, validate_all)
from dice_seg_ros.segmentation_core import (FrameProcessor, FrameResult, OutputFlags,
                                            SegmentationWorker, diagnostic_array)

# Optional output -> (switch parameter, topic).
OPTIONAL_OUTPUTS = {
    "color": ("publish_color", "~/mask_color"),
    "overlay": ("publish_overlay", "~/overlay"),
    "confidence": ("publish_confidence", "~/confidence"),
}
OUTPUT_DEPTH = 5
# Bad parameters, model or classes file: reported in one line, not a traceback.
STARTUP_ERRORS = (DiceSegError, FileNotFoundError, ValueError, ParameterException)


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Return the ROS ParameterDescriptor of a spec (description, range, read_only)."""
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices is not None:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.value_range is not None:
        low, high = spec.value_range
        if spec.type_name == "integer":
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return desc


def declare_specs(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every spec as a parameter, check the values, return ``{name: value}``.

    Raises:
        ValueError: naming the node, parameter and reason, for an invalid value.

    """
    declared = node.declare_parameters("", [
        (s.name, list(s.default) if isinstance(s.default, tuple) else s.default, descriptor(s))
        for s in specs])
    values = {p.name: p.value for p in declared}
    reason = validate_all(specs, values)
    if reason:
        raise ValueError(f"{node.get_name()}: invalid parameter: {reason}")
    return values


def parameter_callback(node_values: dict[str, Any], specs: Sequence[ParamSpec], apply):
    """Return an on-set-parameters callback that validates, stores and applies changes.

    ``apply(changes)`` is called with ``{name: value}`` after the values passed
    validation and were stored in ``node_values``.
    """
    def callback(params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        reason = validate_all(specs, {**node_values, **changes})
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        node_values.update(changes)
        apply(changes)
        return SetParametersResult(successful=True)
    return callback


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Return a keep-last QoS profile; ``reliability`` is "best_effort" or "reliable"."""
    policy = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
              else ReliabilityPolicy.RELIABLE)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


def publish_diagnostics(node: Node, publisher, statuses) -> None:
    """Publish StatusData items as one DiagnosticArray stamped with the node's clock."""
    header = Header(stamp=node.get_clock().now().to_msg())
    publisher.publish(diagnostic_array(statuses, header, DiagnosticArray, DiagnosticStatus,
                                       KeyValue))


def make_segmenter(values: dict[str, Any]) -> Segmenter:
    """Build the Segmenter from the node's parameter values."""
    providers = values["providers"]
    size = (values["input_width"], values["input_height"])
    return Segmenter(model_path=values["model_path"] or None, backend=values["backend"],
                     device=values["device"],
                     providers=None if list(providers) == list(AUTO_PROVIDERS) else providers,
                     input_size=size if all(size) else None)


class SegmentationNode(Node):
    """Segment the newest camera frame and publish masks with the camera's header."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SEGMENTATION_NODE, **kwargs)
        self._values = declare_specs(self, SEGMENTATION_PARAMS)
        values = self._values
        classes = load_classes(values["classes_file"] or None)
        self._processor = FrameProcessor(make_segmenter(values), classes, Image,
                                         values["overlay_alpha"])
        self._lock = threading.Lock()  # publishers change in the parameter callback
        self._mask_pub = self.create_publisher(Image, "~/mask", OUTPUT_DEPTH)
        self._optional: dict[str, Any] = {}
        self._sync_optional_publishers()
        self._worker = SegmentationWorker(self._processor, self._publish, flags=self._wanted,
                                          on_error=self._log_frame_error)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(
            parameter_callback(self._values, SEGMENTATION_PARAMS, self._apply))
        topic, msg_type = (("image/compressed", CompressedImage) if values["use_compressed"]
                           else ("image", Image))
        self._worker.start()
        self._sub = self.create_subscription(
            msg_type, topic, self._worker.submit,
            qos_profile(values["qos_reliability"], values["qos_depth"]))
        self._timer = self.create_timer(values["diagnostics_period_s"], self._diagnostics)
        segmenter = self._processor.segmenter
        self.get_logger().info(
            f"segmenting {self._sub.topic_name} ({msg_type.__name__}, "
            f"{values['qos_reliability']}) with {segmenter.backend} on {segmenter.device}, "
            f"model {getattr(segmenter, 'source', values['model_path'])}")

    def _sync_optional_publishers(self) -> None:
        """Create enabled optional publishers and destroy disabled ones."""
        with self._lock:
            for key, (switch, topic) in OPTIONAL_OUTPUTS.items():
                enabled = self._values[switch]
                if enabled and key not in self._optional:
                    self._optional[key] = self.create_publisher(Image, topic, OUTPUT_DEPTH)
                elif not enabled and key in self._optional:
                    self.destroy_publisher(self._optional.pop(key))

    def _apply(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (overlay alpha, publishing switches)."""
        if "overlay_alpha" in changes:
            self._processor.overlay_alpha = changes["overlay_alpha"]
        if any(switch in changes for switch, _ in OPTIONAL_OUTPUTS.values()):
            self._sync_optional_publishers()

    def _wanted(self) -> OutputFlags:
        """Ask for an optional output only while something subscribes to it."""
        with self._lock:
            return OutputFlags(**{key: pub.get_subscription_count() > 0
                                  for key, pub in self._optional.items()})

    def _publish(self, result: FrameResult) -> None:
        """Publish every message the core made for this frame."""
        self._mask_pub.publish(result.mask)
        with self._lock:
            for key, pub in self._optional.items():
                msg = getattr(result, key)
                if msg is not None:
                    pub.publish(msg)

    def _log_frame_error(self, exc: Exception) -> None:
        """Log a frame that could not be processed (at most every 5 s)."""
        self.get_logger().error(f"frame skipped: {exc}", throttle_duration_sec=5.0)

    def _diagnostics(self) -> None:
        """Publish fps, latency per stage and drops on /diagnostics."""
        status = self._worker.status(self._values["min_fps"],
                                     name=f"{self.get_name()}: segmentation")
        publish_diagnostics(self, self._diag_pub, [status])

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        self._worker.stop()
        super().destroy_node()


def run_node(make_node: Callable[[], Node], name: str, args: Sequence[str] | None = None,
             on_exit: Callable[[Node], None] | None = None) -> int:
    """Start rclpy, build a node, spin it until shutdown, clean up; return the exit code.

    A bad parameter, model or classes file ends the process with one line on
    stderr and exit code 1 instead of a traceback. ``on_exit(node)`` runs after
    spinning stops (Ctrl-C, SIGTERM or ``rclpy.shutdown``) and before the node is
    destroyed.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except STARTUP_ERRORS as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if on_exit is not None:
            on_exit(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(args: Sequence[str] | None = None) -> int:
    """Run the segmentation node until shutdown; return the process exit code."""
    return run_node(SegmentationNode, SEGMENTATION_NODE, args)


if __name__ == "__main__":
    sys.exit(main())
