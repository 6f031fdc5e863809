"""rclpy nodes: camera images in, class-id mask, colour mask, overlay and confidence out.

Only ROS wiring lives here: parameters, QoS, publishers and message types.
Frame handling (conversion, inference, the latest-frame worker, statistics)
is ``segmentation_core``, the same code ``dice-seg eval`` runs. Two nodes share
the wiring: ``SegmentationNode`` starts segmenting at once, and
``SegmentationLifecycleNode`` (a managed node) loads the model in ``configure``
and subscribes in ``activate``, or does both at start with ``autostart``.

Outputs of one camera on ``image`` (relative to the node, so a namespace and
name keep cameras apart): ``~/mask`` mono8 class ids, ``~/mask_color``,
``~/overlay``, ``~/confidence``,
``~/camera_info`` (the camera's, with each mask's header: the mask keeps the
camera's geometry) and ``~/class_table``, published once with transient-local
durability: ``vision_msgs/LabelInfo`` where vision_msgs is installed, else a
``std_msgs/String`` holding ``segmentation_core.class_table_json``. When the
model has an estimated-Dice calibration (``NAME.quality.json``), also
``~/estimated_dice`` and ``~/estimated_dice_mean`` (std_msgs/Float32: the frame's
label-free estimated mean Dice and its mean over ``estimated_dice_window``
frames), ``~/estimated_dice_stamped`` (diagnostic_msgs/DiagnosticArray with the
frame's header: one status holding the estimate, what the Dice monitor pairs
with masks and labels) and a /diagnostics status per camera.

Several cameras (``image_topics: [/front/image_raw, /rear/image_raw]``) share
one network: the newest frame of each runs as one batch per cycle, and each
camera's outputs go under ``<camera namespace>/<node name>/`` (``/front/dice_seg/mask``
...), as if one node per camera ran in that namespace. /diagnostics carries one
status per camera, with frames lost in transport (middleware message-lost
events and gaps in the camera's stamps) beside the frames the node dropped.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from typing import Any, Callable, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, State, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Float32, Header, String

from dice_seg_ros.classes import classes_for_model
from dice_seg_ros.ros.diagnostics import LEVEL_WARN, diagnostic_array
from dice_seg_ros.ros.grid_output import (GridFusion, GridOutput, PoseLookup, occupancy_grid,
                                          quaternion_matrix)
from dice_seg_ros.ros.multi_camera import CameraTopics, camera_topics
from dice_seg_ros.ros.node_params import (AUTO, AUTO_PROVIDERS, SEGMENTATION_NODE,
                                          SEGMENTATION_PARAMS, ParamSpec, reliability_for)
from dice_seg_ros.ros.ros_plumbing import (NodeLog, QosEvents, create_diagnostics_publisher,
                                           declare_specs, descriptor, forward_library_logging,
                                           parameter_callback, publish_diagnostics, qos_profile,
                                           run_node, status_name, warn_undeclared_overrides)
from dice_seg_ros.ros.segmentation_core import (EstimatedDiceTracker, FrameProcessor, FrameResult,
                                                OutputFlags, SegmentationWorker, class_table_json,
                                                engine_cache_dir, label_info, with_header)
from dice_seg_ros.ros.stamp_gaps import StampGaps
from dice_seg_ros.runtime.estimated_dice import sidecar_path
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime import outputs
from dice_seg_ros.runtime.pairing import header_stamp_ns
from dice_seg_ros.runtime.traversability import CameraGrid, grid_settings

try:
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # not on PyPI; a ROS installation may have it
    LabelInfo = VisionClass = None

# Optional output -> (switch parameter, topic under the camera's output prefix).
OPTIONAL_OUTPUTS = {
    "color": ("publish_color", outputs.MASK_COLOR),
    "overlay": ("publish_overlay", outputs.OVERLAY),
    "confidence": ("publish_confidence", outputs.CONFIDENCE),
}
# Estimated-Dice output -> (message type, topic under the camera's output prefix).
ESTIMATE_OUTPUTS = {
    "estimated_dice": (Float32, outputs.ESTIMATED_DICE),
    "estimated_dice_mean": (Float32, outputs.ESTIMATED_DICE_MEAN),
    "estimated_dice_stamped": (DiagnosticArray, outputs.ESTIMATED_DICE_STAMPED),
}
AUTOSTART = ParamSpec("autostart", False,
                      "configure and activate the managed node at start (no lifecycle manager)")


def make_segmenter(values: dict[str, Any], node_name: str) -> Segmenter:
    """Build the Segmenter from the node's parameter values and fully qualified name."""
    providers = values["providers"]
    size = (values["input_width"], values["input_height"])
    return Segmenter(model_path=values["model_path"] or None, backend=values["backend"],
                     device=values["device"],
                     providers=None if list(providers) == list(AUTO_PROVIDERS) else providers,
                     input_size=size if all(size) else None,
                     engine_cache_dir=engine_cache_dir(values["engine_cache_dir"], node_name))


class CameraOutputs:
    """One camera's publishers (mask, camera_info, optional outputs) and transport counters.

    Args:
        topics: the camera's topics.
        publisher: creates a publisher as ``publisher(msg_type, topic)``.
        destroy: destroys a publisher.

    """

    def __init__(self, topics: CameraTopics, publisher: Callable[[type, str], Any],
                 destroy: Callable[[Any], None]) -> None:
        self.topics = topics
        self._publisher = publisher
        self._destroy = destroy
        self._lock = threading.Lock()  # optional publishers change in the parameter callback
        self.pubs = {"mask": publisher(Image, topics.output(outputs.MASK)),
                     "camera_info": publisher(CameraInfo, topics.output(outputs.CAMERA_INFO))}
        self.optional: dict[str, Any] = {}
        self.camera_info: CameraInfo | None = None
        self.gaps = StampGaps()
        self.estimates: EstimatedDiceTracker | None = None
        self.grid: GridOutput | None = None
        self.on_grid: Callable[[Any, Any], None] = lambda header, costs: None
        self.grid_wanted: Callable[[], bool] = lambda: False

    def enable_estimates(self, tracker: EstimatedDiceTracker) -> None:
        """Publish each frame's estimated Dice (and its windowed mean) from ``tracker``."""
        self.estimates = tracker
        for key, (msg_type, name) in ESTIMATE_OUTPUTS.items():
            self.pubs[key] = self._publisher(msg_type, self.topics.output(name))

    def enable_grid(self, grid: GridOutput, frame: str) -> None:
        """Publish this camera's traversability grid in ``frame`` while something subscribes."""
        self.grid = grid
        self.grid_frame = frame
        self.pubs["traversability"] = self._publisher(OccupancyGrid,
                                                      self.topics.output(outputs.TRAVERSABILITY))

    def on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the newest camera_info, republished with each mask's header."""
        self.camera_info = msg

    def sync_optional(self, values: dict[str, Any]) -> None:
        """Create enabled optional publishers and destroy disabled ones."""
        with self._lock:
            for key, (switch, name) in OPTIONAL_OUTPUTS.items():
                if values[switch] and key not in self.optional:
                    self.optional[key] = self._publisher(Image, self.topics.output(name))
                elif not values[switch] and key in self.optional:
                    self._destroy(self.optional.pop(key))

    def wanted(self) -> OutputFlags:
        """Ask for an optional output only while something subscribes to it."""
        with self._lock:
            return OutputFlags(**{key: pub.get_subscription_count() > 0
                                  for key, pub in self.optional.items()})

    def publish(self, result: FrameResult) -> None:
        """Publish every message the core made for a frame, and camera_info with its header."""
        self.pubs["mask"].publish(result.mask)
        if self.camera_info is not None:
            self.pubs["camera_info"].publish(with_header(self.camera_info, result.header))
        with self._lock:
            for key, pub in self.optional.items():
                msg = getattr(result, key)
                if msg is not None:
                    pub.publish(msg)
        if self.estimates is not None and result.estimated_dice is not None:
            self._publish_estimate(result.header, result.estimated_dice)
        if self.grid is not None:
            self._publish_grid(result)

    def _publish_grid(self, result: FrameResult) -> None:
        """Publish the frame's grid, computed only while it (or the fused grid) is wanted."""
        pub = self.pubs["traversability"]
        if pub.get_subscription_count() == 0 and not self.grid_wanted():
            return
        costs = self.grid.costs(result.class_ids, result.header, self.camera_info)
        if costs is None:
            return
        pub.publish(occupancy_grid(costs, self.grid.grid.spec, result.header, self.grid_frame,
                                   OccupancyGrid))
        self.on_grid(result.header, costs)

    def _publish_estimate(self, header: Any, estimate: float) -> None:
        """Publish a frame's estimated Dice, the windowed mean, and the stamped status."""
        mean = self.estimates.add(estimate)
        self.pubs["estimated_dice"].publish(Float32(data=estimate))
        self.pubs["estimated_dice_mean"].publish(Float32(data=mean))
        self.pubs["estimated_dice_stamped"].publish(diagnostic_array(
            [self.estimates.frame_status(estimate)], header, DiagnosticArray, DiagnosticStatus,
            KeyValue))

    def destroy(self) -> None:
        """Destroy every publisher of this camera."""
        with self._lock:
            for pub in [*self.pubs.values(), *self.optional.values()]:
                self._destroy(pub)
            self.pubs, self.optional = {}, {}


class SegmentationWiring:
    """Publishers, subscriptions and worker of a segmentation node, in lifecycle steps.

    ``configure`` loads the model and creates the publishers, ``activate``
    subscribes to the cameras, ``deactivate`` unsubscribes, ``cleanup`` frees
    everything ``configure`` made. One ``SegmentationWorker`` serves every camera:
    the newest frame of each, one batch per cycle (one camera: a batch of one).
    """

    def __init__(self, node: Node, values: dict[str, Any]) -> None:
        self.node = node
        self.values = values
        self.log = NodeLog(node)
        self.events = QosEvents(self.log)
        self.processor: FrameProcessor | None = None
        self.worker: SegmentationWorker | None = None
        self.cameras: dict[str, CameraOutputs] = {}
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._image_subs: dict[str, tuple[Any, str]] = {}  # camera -> (subscription, reliability)
        self._class_tables: dict[str, Any] = {}  # topic -> publisher
        self.active = False
        # A managed node's outputs are lifecycle publishers: silent unless the node is active.
        managed = isinstance(node, LifecycleNode)
        self._create_pub = node.create_lifecycle_publisher if managed else node.create_publisher
        self._destroy_pub = (node.destroy_lifecycle_publisher if managed
                             else node.destroy_publisher)
        self._follow_timer: Any = None
        self._timer = None
        self._undo_logging = forward_library_logging(node)

    def configure(self) -> None:
        """Load the model and create the publishers, diagnostics timer and class tables."""
        node, values = self.node, self.values
        segmenter = make_segmenter(values, node.get_fully_qualified_name())
        classes = classes_for_model(segmenter.meta.class_names, values["classes_file"] or None,
                                    segmenter.class_costs)
        self.processor = FrameProcessor(segmenter, classes, Image, values["overlay_alpha"])
        topics = camera_topics(values["image_topics"], node.get_name(),
                               compressed=values["use_compressed"])
        self.cameras = {t.camera: CameraOutputs(t, self._publisher, self._destroy_pub)
                        for t in topics}
        self._pubs["diagnostics"] = create_diagnostics_publisher(node)
        for camera in self.cameras.values():
            topic = camera.topics.output(outputs.CLASS_TABLE)
            self._class_tables[topic] = self._publisher(
                String if LabelInfo is None else LabelInfo, topic, True)
        self._enable_estimates(segmenter)
        if values["traversability.enabled"]:
            self._enable_grids()
        self.sync_optional_publishers()
        self.worker = self._make_worker()
        self._timer = node.create_timer(values["diagnostics_period_s"], self._diagnostics)

    def _enable_estimates(self, segmenter: Segmenter) -> None:
        """Give each camera an estimated-Dice tracker if the model has a calibration.

        Without one nothing is published, and the log says so once.
        """
        calibration = sidecar_path(segmenter.model_path)
        if segmenter.calibration is None:
            self.node.get_logger().info(
                f"no estimated Dice: {segmenter.model_path} has no usable calibration "
                f"({calibration.name}; see 'dice-seg calibrate'), so estimated_dice is not "
                "published")
            return
        for key, camera in self.cameras.items():
            camera.enable_estimates(EstimatedDiceTracker(
                self.values["estimated_dice_window"], str(calibration),
                warn_below=self.values["estimated_dice_warn"],
                error_below=self.values["estimated_dice_error"],
                name=status_name(self.node, f"estimated dice {key}".rstrip())))

    def _enable_grids(self) -> None:
        """Give each camera a traversability grid; with several cameras, fuse them too."""
        spec, pose = grid_settings(self.values)
        costs = self.processor.classes.cost_table()
        lookup = self._tf_lookup() if self.values["traversability.use_tf"] else None
        frame = self.values["traversability.frame"]
        for camera in self.cameras.values():
            camera.enable_grid(GridOutput(CameraGrid(spec, costs), pose.matrix(), lookup), frame)
        if len(self.cameras) > 1:
            fused = self._publisher(OccupancyGrid, f"~/{outputs.TRAVERSABILITY}")
            self._pubs["traversability"] = fused
            fusion = GridFusion()

            def on_grid(key: str, header: Any, grid: Any) -> None:
                fused.publish(occupancy_grid(fusion.add(key, header, grid), spec, header, frame,
                                             OccupancyGrid))
            for key, camera in self.cameras.items():
                camera.on_grid = lambda header, grid, key=key: on_grid(key, header, grid)
                camera.grid_wanted = lambda: fused.get_subscription_count() > 0

    def _tf_lookup(self) -> PoseLookup | None:
        """Return a TF lookup into the grid frame, or None where tf2_ros is not installed."""
        try:
            import tf2_ros
        except ImportError:
            return None
        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, self.node)
        target = self.values["traversability.frame"]

        def lookup(source: str, stamp: Any) -> Any:
            # At the frame's stamp; else the newest transform (a zero stamp), since a moving
            # joint's TF often arrives after the image, and a parameter pose would be wrong.
            for when in (stamp, type(stamp)()):
                try:
                    t = buffer.lookup_transform(target, source, when).transform
                except tf2_ros.TransformException:
                    continue
                return quaternion_matrix((t.translation.x, t.translation.y, t.translation.z),
                                         (t.rotation.x, t.rotation.y, t.rotation.z,
                                          t.rotation.w))
            return None
        return lookup

    def _make_worker(self) -> SegmentationWorker:
        """Return the worker: the newest frame of every camera, one batch per cycle."""
        return SegmentationWorker(self.processor, list(self.cameras), publish=self._publish,
                                  flags=lambda name: self.cameras[name].wanted(),
                                  on_error=self._frame_error)

    def _publish(self, camera: str, result: FrameResult) -> None:
        """Publish a camera's frame result, unless shutdown has begun."""
        # A signal shuts the context down while the worker may still be busy: a
        # publish then would fail with "publisher's context is invalid".
        if self.node.context.ok():
            self.cameras[camera].publish(result)

    def _frame_error(self, camera: str | None, exc: Exception) -> None:
        """Log a failed frame (camera None: the whole batch); quiet once shutdown has begun."""
        if self.node.context.ok():
            where = "frame" if len(self.cameras) == 1 else f"frame {camera or 'batch'}"
            self.log.exception(where, exc)

    def _publisher(self, msg_type: type, topic: str, transient_local: bool = False) -> Any:
        """Create an output publisher with the output QoS parameters and QoS event logging."""
        qos = qos_profile(self.values["output_qos_reliability"],
                          1 if transient_local else self.values["output_qos_depth"],
                          transient_local=transient_local)
        pub = self._create_pub(msg_type, topic, qos, event_callbacks=self.events.publisher(topic))
        if self.active and isinstance(pub, LifecyclePublisher):
            pub.on_activate(None)  # made while active (an output switched on): enable it now
        return pub

    def _publish_class_tables(self) -> None:
        """Publish each camera's class table; transient-local keeps it for late subscribers."""
        classes = self.processor.classes
        header = Header(stamp=self.node.get_clock().now().to_msg())
        msg = (String(data=class_table_json(classes)) if LabelInfo is None
               else label_info(classes, header, LabelInfo, VisionClass))
        for pub in self._class_tables.values():
            pub.publish(msg)

    def activate(self) -> None:
        """Start the worker and subscribe to each camera's image and camera_info."""
        node, values = self.node, self.values
        self.active = True
        self._publish_class_tables()
        self.worker.start()
        for name, camera in self.cameras.items():
            topic = camera.topics.camera_info
            self._subs.append(node.create_subscription(
                CameraInfo, topic, camera.on_camera_info,
                qos_profile("reliable" if values["qos_reliability"] == "reliable"
                            else "best_effort", values["qos_depth"]),
                event_callbacks=self.events.subscription(topic)))
            self._subscribe_image(name, self._image_reliability(camera.topics.image))
        if values["qos_reliability"] == AUTO:
            self._follow_timer = node.create_timer(1.0, self._follow_publishers)
        segmenter = self.processor.segmenter
        images = [node.resolve_topic_name(c.topics.image) for c in self.cameras.values()]
        node.get_logger().info(
            f"segmenting {', '.join(images)} "
            f"({'CompressedImage' if values['use_compressed'] else 'Image'}, "
            f"{values['qos_reliability']}) with {segmenter.backend} on {segmenter.device}, "
            f"model {segmenter.source}, classes {list(self.processor.classes.names)}")

    def _image_reliability(self, topic: str) -> str:
        """Return the reliability to subscribe ``topic`` with (auto: follow its publishers)."""
        if self.values["qos_reliability"] != AUTO:
            return self.values["qos_reliability"]
        infos = self.node.get_publishers_info_by_topic(self.node.resolve_topic_name(topic))
        found = reliability_for([
            "reliable" if i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
            else "best_effort" for i in infos])
        # No publisher yet: best effort hears any publisher until one shows up.
        return found or "best_effort"

    def _subscribe_image(self, name: str, reliability: str) -> None:
        """(Re)subscribe camera ``name``'s image topic with ``reliability``."""
        old = self._image_subs.pop(name, None)
        if old is not None:
            self.node.destroy_subscription(old[0])
        topic = self.cameras[name].topics.image
        msg_type = CompressedImage if self.values["use_compressed"] else Image
        sub = self.node.create_subscription(
            msg_type, topic, self._on_image(name),
            qos_profile(reliability, self.values["qos_depth"]),
            event_callbacks=self.events.subscription(topic))
        self._image_subs[name] = (sub, reliability)

    def _follow_publishers(self) -> None:
        """qos_reliability auto: match each camera's subscription to its publishers' QoS."""
        for name, camera in self.cameras.items():
            wanted = self._image_reliability(camera.topics.image)
            if name in self._image_subs and self._image_subs[name][1] != wanted:
                self.node.get_logger().info(
                    f"{camera.topics.image}: the camera publishes {wanted}; subscribing "
                    f"{wanted}")
                self._subscribe_image(name, wanted)

    def _on_image(self, name: str) -> Callable[[Any], None]:
        """Return the image callback of camera ``name``: count stamp gaps, offer the frame."""
        gaps = self.cameras[name].gaps
        submit = self.worker.submit

        def on_image(msg: Any) -> None:
            gaps.add(header_stamp_ns(msg.header))
            submit(name, msg)
        return on_image

    def deactivate(self) -> None:
        """Unsubscribe and stop the worker after the frame in progress."""
        self.active = False
        for sub in [*self._subs, *(s for s, _ in self._image_subs.values())]:
            self.node.destroy_subscription(sub)
        self._subs, self._image_subs = [], {}
        if self._follow_timer is not None:
            self.node.destroy_timer(self._follow_timer)
            self._follow_timer = None
        if self.worker is not None:
            self.worker.stop()

    def cleanup(self) -> None:
        """Destroy what ``configure`` created."""
        self.deactivate()
        for camera in self.cameras.values():
            camera.destroy()
        for pub in [*self._pubs.values(), *self._class_tables.values()]:
            self._destroy_pub(pub)
        self._pubs, self._class_tables, self.cameras = {}, {}, {}
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        self.processor = self.worker = None

    def close(self) -> None:
        """Stop everything and give the library's logging back to Python."""
        self.deactivate()
        self._undo_logging()

    def sync_optional_publishers(self) -> None:
        """Create enabled optional publishers and destroy disabled ones, for every camera."""
        for camera in self.cameras.values():
            camera.sync_optional(self.values)

    def apply(self, changes: dict[str, Any]) -> None:
        """Apply run-time parameter changes (overlay alpha, publishing switches)."""
        if "overlay_alpha" in changes and self.processor is not None:
            self.processor.overlay_alpha = changes["overlay_alpha"]
        for camera in self.cameras.values():
            if camera.estimates is not None:
                camera.estimates.warn_below = self.values["estimated_dice_warn"]
                camera.estimates.error_below = self.values["estimated_dice_error"]
        if self.processor is not None and any(
                switch in changes for switch, _ in OPTIONAL_OUTPUTS.values()):
            self.sync_optional_publishers()

    def _diagnostics(self) -> None:
        """Publish fps, latency per stage, drops and transport losses on /diagnostics.

        One status per camera; with several cameras each is named after its
        camera and also carries the batch cycle's latency and size.
        """
        statuses = []
        min_fps = self.values["min_fps"]
        for key, camera in self.cameras.items():
            status = self.worker.status(
                camera=key, min_fps=min_fps,
                name=status_name(self.node, f"segmentation {key}".rstrip()))
            status.values.update(self.events.values(camera.topics.image))
            status.values.update(camera.gaps.values())
            if camera.grid is not None:
                status.values.update(camera.grid.status_values())
                if not camera.grid.ok and status.level < LEVEL_WARN:
                    status = replace(status, level=LEVEL_WARN, message=camera.grid.state)
            statuses.append(status)
            if camera.estimates is not None:
                statuses.append(camera.estimates.status())
        publish_diagnostics(self.node, self._pubs["diagnostics"], statuses)


class SegmentationNode(Node):
    """Segment the newest camera frame and publish masks with the camera's header."""

    def __init__(self, node_name: str = outputs.NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._values = declare_specs(self, SEGMENTATION_PARAMS)
        warn_undeclared_overrides(self)
        self.wiring = SegmentationWiring(self, self._values)
        try:
            self.wiring.configure()
        except Exception:
            self.wiring.close()
            raise
        self.add_on_set_parameters_callback(
            parameter_callback(self._values, SEGMENTATION_PARAMS, self.wiring.apply))
        self.wiring.activate()

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        self.wiring.close()
        super().destroy_node()


class SegmentationLifecycleNode(LifecycleNode):
    """The segmentation node as a managed node: model loaded in configure, camera in activate."""

    def __init__(self, node_name: str = outputs.NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._values = declare_specs(self, SEGMENTATION_PARAMS)
        autostart = self.declare_parameter(AUTOSTART.name, AUTOSTART.default,
                                           descriptor(AUTOSTART)).value
        warn_undeclared_overrides(self)
        self.wiring = SegmentationWiring(self, self._values)
        self.add_on_set_parameters_callback(
            parameter_callback(self._values, SEGMENTATION_PARAMS, self.wiring.apply))
        if autostart:
            self.trigger_configure()
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the model and create the publishers; FAILURE (logged) on a bad model."""
        try:
            self.wiring.configure()
        except Exception as exc:  # noqa: BLE001 - any load error is a failed transition
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self.wiring.cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Enable the lifecycle publishers, subscribe to the camera and start segmenting."""
        enabled = super().on_activate(state)
        if enabled == TransitionCallbackReturn.SUCCESS:
            self.wiring.activate()
        return enabled

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe from the camera, then silence the lifecycle publishers."""
        self.wiring.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Unload the model and destroy the publishers."""
        self.wiring.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything on shutdown from any state."""
        self.wiring.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        self.wiring.close()
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> int:
    """Run the segmentation node until shutdown; return the process exit code."""
    return run_node(SegmentationNode, SEGMENTATION_NODE, args)


def lifecycle_main(args: Sequence[str] | None = None) -> int:
    """Run the managed segmentation node until shutdown; return the process exit code."""
    return run_node(SegmentationLifecycleNode, SEGMENTATION_NODE, args)


if __name__ == "__main__":
    sys.exit(main())
