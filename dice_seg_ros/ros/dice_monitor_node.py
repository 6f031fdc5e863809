"""rclpy node: online Dice/IoU of predicted masks against ground-truth labels.

Only ROS wiring lives here: two subscriptions, publishers, the save_report
service. Stamp pairing, scoring, thresholds, the streamed per-frame CSV and
the report are ``monitor_core``, built on the same pairer and DiceTracker as
``dice-seg eval``. ``~/save_report`` takes a snapshot and answers at once; the
report is written from it on the core's report thread, so pairs keep being scored,
and ``~/report_written`` names the folder once every file is on disk (report.json
is replaced atomically). The report on shutdown is written after spinning stops.
With ``estimate_dice``, a third subscription, ``estimated_dice_stamped`` (the segmentation node's
``~/estimated_dice_stamped``), gives each frame's label-free estimate, which the
core joins with the frame's true Dice by stamp for the report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from concurrent.futures import Future
from typing import Any, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.logging import get_logger
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import (Float32, Float32MultiArray, MultiArrayDimension, MultiArrayLayout,
                          String)
from std_srvs.srv import Trigger

from dice_seg_ros.classes import load_classes
from dice_seg_ros.ros.monitor_core import MonitorCore
from dice_seg_ros.ros.node_params import MONITOR_NODE, MONITOR_PARAMS
from dice_seg_ros.ros.ros_plumbing import (NodeLog, QosEvents, create_diagnostics_publisher,
                                           declare_specs, parameter_callback, publish_diagnostics,
                                           qos_profile, run_node, status_name,
                                           warn_undeclared_overrides)
from dice_seg_ros.runtime.report import PER_FRAME_CSV


class DiceMonitorNode(Node):
    """Pair masks with labels by stamp and publish per-class and mean Dice."""

    def __init__(self, node_name: str = MONITOR_NODE, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._values = declare_specs(self, MONITOR_PARAMS)
        warn_undeclared_overrides(self)
        values = self._values
        self.log = NodeLog(self)
        self.events = QosEvents(self.log)
        report_dir = values["report_dir"]
        self.core = MonitorCore(load_classes(values["classes_file"] or None),
                                label_format=values["label_format"],
                                window_size=values["window_size"],
                                ema_alpha=values["ema_alpha"],
                                warn_below=values["warn_below"],
                                error_below=values["error_below"],
                                slop_s=values["sync_slop_s"],
                                max_pending=values["sync_queue_size"],
                                rows_path=Path(report_dir) / PER_FRAME_CSV if report_dir else None,
                                estimates=values["estimate_dice"])
        qos = qos_profile(values["qos_reliability"], values["qos_depth"])
        self._subs = {topic: self.create_subscription(
            Image, topic, lambda msg, topic=topic: self._on_message(topic, msg), qos,
            event_callbacks=self.events.subscription(topic)) for topic in ("mask", "labels")}
        if values["estimate_dice"]:
            self._subs["estimated_dice_stamped"] = self.create_subscription(
                DiagnosticArray, "estimated_dice_stamped", self._on_estimate, qos,
                event_callbacks=self.events.subscription("estimated_dice_stamped"))
        self._mean_pub = self.create_publisher(Float32, "~/mean_dice", 10)
        self._dice_pub = self.create_publisher(Float32MultiArray, "~/dice", 10)
        # Where each ~/save_report report lands, once every file of it is on disk.
        self._written_pub = self.create_publisher(String, "~/report_written", 10)
        self._diag_pub = create_diagnostics_publisher(self)
        self._service = self.create_service(Trigger, "~/save_report", self._on_save_report)
        self.add_on_set_parameters_callback(
            parameter_callback(self._values, MONITOR_PARAMS, self._apply))
        self._timer = self.create_timer(values["diagnostics_period_s"], self._diagnostics)
        self.get_logger().info(
            f"pairing {self._subs['mask'].topic_name} with {self._subs['labels'].topic_name} "
            f"({values['label_format']} labels, slop {values['sync_slop_s']} s); per-frame rows "
            f"stream to {self.core.rows.path}"
            + (f"; estimated Dice from {self._subs['estimated_dice_stamped'].topic_name}"
               if values["estimate_dice"] else ""))

    def _apply(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (thresholds; report_dir is read when used)."""
        self.core.warn_below = self._values["warn_below"]
        self.core.error_below = self._values["error_below"]

    def _on_message(self, topic: str, msg: Image) -> None:
        """Pair a mask or label by stamp; score and publish the pairs it completes."""
        added = self.core.add(topic, msg)
        for exc in added.errors:
            self.log.exception("pair", exc)
        if added.scores:
            self._mean_pub.publish(self.core.mean_dice_msg(Float32))
            self._dice_pub.publish(self.core.dice_msg(Float32MultiArray, MultiArrayLayout,
                                                      MultiArrayDimension))

    def _on_estimate(self, msg: DiagnosticArray) -> None:
        """Join a frame's estimated Dice with its scored frame by stamp."""
        try:
            self.core.add_estimate(msg)
        except ValueError as exc:
            self.log.exception("estimated_dice_stamped", exc)

    def _diagnostics(self) -> None:
        """Publish the Dice status with per-class values and transport losses on /diagnostics."""
        status = self.core.status(name=status_name(self, "dice"))
        status.values.update(self.events.values())
        publish_diagnostics(self, self._diag_pub, [status])

    def _report_dir(self) -> Path:
        """Return the report folder; ValueError if the parameter is empty."""
        report_dir = self._values["report_dir"]
        if not report_dir:
            raise ValueError("parameter report_dir is empty; set it to a folder")
        return Path(report_dir).resolve()

    def write_report(self) -> Path:
        """Write the report to ``report_dir`` now and return that folder."""
        folder = self._report_dir()
        self.core.write_report(folder)
        return folder

    def _on_save_report(self, request: Trigger.Request,
                        response: Trigger.Response) -> Trigger.Response:
        """Handle ~/save_report: snapshot now, write on the report thread, answer at once.

        Writing takes 0.4-1 s (plots); on the node's one executor thread it would stop
        scoring meanwhile, and a second executor thread races the node's shutdown.
        """
        try:
            folder = self._report_dir()
            future = self.core.write_report_async(folder)
        except (ValueError, OSError) as exc:
            self.log.exception("save_report", exc)
            response.success, response.message = False, str(exc)
            return response
        future.add_done_callback(lambda done: self._report_written(done, folder))
        response.success = True
        response.message = (f"writing the report of {self.core.scored} pairs to {folder}; "
                            f"{self._written_pub.topic_name} says when it is on disk")
        return response

    def _report_written(self, future: Future, folder: Path) -> None:
        """Log the outcome of a background report; announce it once it is on disk."""
        exc = future.exception()
        if exc is not None:
            self.log.exception("save_report", exc)
        elif self.context.ok():
            self.get_logger().info(f"report written to {folder}")
            self._written_pub.publish(String(data=str(folder)))

    def report_on_shutdown(self) -> None:
        """Write the report when the node stops, unless report_dir is empty."""
        # A signal has already shut the context down, so the node's logger cannot
        # reach /rosout (rcl prints "publisher's context is invalid"); a logger
        # that no node registered writes to the console only.
        logger = get_logger(f"{self.get_name()}.shutdown")
        try:
            if self._values["report_dir"]:
                folder = self.write_report()
                logger.info(f"report of {self.core.scored} pairs written to {folder}")
        except (ValueError, OSError) as exc:
            logger.warning(f"no report on shutdown: {exc}")
        finally:
            self.core.close()


def main(args: Sequence[str] | None = None) -> int:
    """Run the monitor until shutdown, then write its report; return the exit code."""
    return run_node(DiceMonitorNode, MONITOR_NODE, args,
                    on_exit=DiceMonitorNode.report_on_shutdown)


if __name__ == "__main__":
    sys.exit(main())
