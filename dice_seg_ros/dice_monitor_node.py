"""rclpy node: online Dice/IoU of predicted masks against ground-truth labels.

Only ROS wiring lives here: stamp pairing with message_filters, publishers,
the save_report service. Scoring, thresholds and the report are
``monitor_core``, built on the same DiceTracker as ``dice-seg eval``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import message_filters
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.logging import get_logger
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray, MultiArrayDimension, MultiArrayLayout
from std_srvs.srv import Trigger

from dice_seg_ros.classes import load_classes
from dice_seg_ros.monitor_core import MonitorCore
from dice_seg_ros.node_params import MONITOR_NODE, MONITOR_PARAMS
from dice_seg_ros.segmentation_node import (declare_specs, parameter_callback,
                                            publish_diagnostics, qos_profile, run_node)


class DiceMonitorNode(Node):
    """Pair masks with labels by stamp and publish per-class and mean Dice."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(MONITOR_NODE, **kwargs)
        self._values = declare_specs(self, MONITOR_PARAMS)
        values = self._values
        self.core = MonitorCore(load_classes(values["classes_file"] or None),
                                label_format=values["label_format"],
                                window_size=values["window_size"],
                                ema_alpha=values["ema_alpha"],
                                warn_below=values["warn_below"],
                                error_below=values["error_below"])
        qos = qos_profile(values["qos_reliability"], values["qos_depth"])
        self._subs = {topic: message_filters.Subscriber(self, Image, topic, qos_profile=qos)
                      for topic in ("mask", "labels")}
        # Registered before the synchroniser's own callbacks, so a message is
        # counted as received before it can be counted as paired.
        for topic, sub in self._subs.items():
            sub.registerCallback(lambda _msg, topic=topic: self.core.count(topic))
        self._sync = message_filters.ApproximateTimeSynchronizer(
            list(self._subs.values()), values["sync_queue_size"], values["sync_slop_s"])
        self._sync.registerCallback(self._on_pair)
        self._mean_pub = self.create_publisher(Float32, "~/mean_dice", 10)
        self._dice_pub = self.create_publisher(Float32MultiArray, "~/dice", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._service = self.create_service(Trigger, "~/save_report", self._on_save_report)
        self.add_on_set_parameters_callback(
            parameter_callback(self._values, MONITOR_PARAMS, self._apply))
        self._timer = self.create_timer(values["diagnostics_period_s"], self._diagnostics)
        self.get_logger().info(
            f"pairing {self._subs['mask'].sub.topic_name} with "
            f"{self._subs['labels'].sub.topic_name} ({values['label_format']} labels, "
            f"slop {values['sync_slop_s']} s)")

    def _apply(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (thresholds; report_dir is read when used)."""
        self.core.warn_below = self._values["warn_below"]
        self.core.error_below = self._values["error_below"]

    def _on_pair(self, mask: Image, labels: Image) -> None:
        """Score one stamp-matched pair and publish the running figures."""
        try:
            self.core.score_pair(mask, labels)
        except ValueError as exc:
            self.get_logger().error(f"pair skipped: {exc}", throttle_duration_sec=5.0)
            return
        self._mean_pub.publish(self.core.mean_dice_msg(Float32))
        self._dice_pub.publish(self.core.dice_msg(Float32MultiArray, MultiArrayLayout,
                                                  MultiArrayDimension))

    def _diagnostics(self) -> None:
        """Publish the Dice status with per-class values on /diagnostics."""
        publish_diagnostics(self, self._diag_pub,
                            [self.core.status(name=f"{self.get_name()}: dice")])

    def write_report(self) -> Path:
        """Write the report to ``report_dir`` and return that folder; ValueError if impossible."""
        report_dir = self._values["report_dir"]
        if not report_dir:
            raise ValueError("parameter report_dir is empty; set it to a folder")
        self.core.write_report(report_dir)
        return Path(report_dir).resolve()

    def _on_save_report(self, request: Trigger.Request,
                        response: Trigger.Response) -> Trigger.Response:
        """Handle ~/save_report: write the report now, answer with its folder or the error."""
        try:
            response.message = str(self.write_report())
            response.success = True
        except (ValueError, OSError) as exc:
            response.success, response.message = False, str(exc)
        return response

    def report_on_shutdown(self) -> None:
        """Write the report when the node stops, unless report_dir is empty."""
        if not self._values["report_dir"]:
            return
        # A signal has already shut the context down, so the node's logger cannot
        # reach /rosout (rcl prints "publisher's context is invalid"); a logger
        # that no node registered writes to the console only.
        logger = get_logger(f"{self.get_name()}.shutdown")
        try:
            folder = self.write_report()
        except (ValueError, OSError) as exc:
            logger.warning(f"no report on shutdown: {exc}")
            return
        logger.info(f"report of {self.core.scored} pairs written to {folder}")


def main(args: Sequence[str] | None = None) -> int:
    """Run the monitor until shutdown, then write its report; return the exit code."""
    return run_node(DiceMonitorNode, MONITOR_NODE, args,
                    on_exit=DiceMonitorNode.report_on_shutdown)


if __name__ == "__main__":
    sys.exit(main())
