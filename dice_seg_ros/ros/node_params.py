"""Parameter specifications of the two nodes, in one place and without ROS.

The nodes declare their ROS parameters from these specs, the YAML files in
``config/`` list exactly these names with these defaults, and the tests check
both. ``validate`` gives the reason a value is rejected, which the nodes return
from their set-parameters callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from dice_seg_ros.runtime.image_conversion import LABEL_FORMATS
from dice_seg_ros.runtime.inference import BACKENDS, DEVICES
from dice_seg_ros.runtime.outputs import camera_namespace

SEGMENTATION_NODE = "segmentation_node"
MONITOR_NODE = "dice_monitor_node"

# ``providers: [auto]`` rather than an empty list: ROS 2 parameter YAML cannot
# carry an empty array, and an empty Python list has no element type to declare.
AUTO_PROVIDERS = ("auto",)


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default, meaning and allowed values.

    Attributes:
        name: parameter name.
        default: default value; its Python type is the parameter type
            (bool, int, float, str or tuple of str for a string array).
        description: what it means, with units.
        value_range: inclusive ``(low, high)`` for numbers, or None.
        choices: allowed values of a string parameter, or None for any.
        read_only: True when the value cannot change after the node starts.
        exclusive_low: True when ``low`` itself is not allowed (e.g. EMA alpha > 0).

    """

    name: str
    default: Any
    description: str
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = True
    exclusive_low: bool = False

    @property
    def type_name(self) -> str:
        """Return the ROS parameter type name: bool, integer, double, string, string_array."""
        return _type_name(self.default)


def _type_name(value: Any) -> str:
    """Map a Python value to its ROS parameter type name."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "string_array"
    raise TypeError(f"unsupported parameter value {value!r}")


QOS_CHOICES = ("best_effort", "reliable")
AUTO = "auto"


def reliability_for(publishers: Sequence[str]) -> str | None:
    """Return the subscription reliability that follows a topic's publishers, or None if none.

    Reliable when every publisher is reliable: a best-effort subscription to a reliable camera
    loses whole large frames whenever one fragment is lost. Best effort as soon as one
    publisher is best effort, since a reliable subscription would get nothing from it.
    """
    if not publishers:
        return None
    return "reliable" if all(p == "reliable" for p in publishers) else "best_effort"


# One camera on the relative, remappable ``image`` topic: the single-camera node.
# Not an empty list, for the same reason as AUTO_PROVIDERS.
DEFAULT_IMAGE_TOPICS = ("image",)


# The ground grid (nav_msgs/OccupancyGrid on ~/traversability): its frame, extent, and the
# camera's pose on flat ground when TF does not give it (dice_seg_ros.runtime.traversability).
TRAVERSABILITY_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("traversability.enabled", False,
              "publish ~/traversability (nav_msgs/OccupancyGrid) while something subscribes"),
    ParamSpec("traversability.frame", "base_link",
              "frame of the grid: x forward, y left, z up, on the ground plane z = 0"),
    ParamSpec("traversability.resolution", 0.1, "grid cell edge, in metres",
              value_range=(0.01, 10.0)),
    ParamSpec("traversability.range", 10.0, "grid extent ahead of x = 0, in metres",
              value_range=(0.1, 1000.0)),
    ParamSpec("traversability.width", 10.0, "grid extent across, centred on y = 0, in metres",
              value_range=(0.1, 1000.0)),
    ParamSpec("traversability.min_share", 0.2,
              "share of a cell's pixels a class needs to count in the cell (the cell takes the "
              "highest cost among counting classes)", value_range=(0.0, 1.0),
              exclusive_low=True),
    ParamSpec("traversability.use_tf", True,
              "take the camera pose from TF (camera frame_id -> traversability.frame) where "
              "tf2_ros is installed and the transform exists; else the camera_* parameters"),
    ParamSpec("traversability.camera_height", 1.0,
              "camera centre above the ground, in metres", value_range=(0.01, 100.0)),
    ParamSpec("traversability.camera_pitch", 0.0,
              "camera pitch in radians, positive looking down", value_range=(-1.57, 1.57)),
    ParamSpec("traversability.camera_roll", 0.0,
              "camera roll about its viewing direction, in radians", value_range=(-1.57, 1.57)),
    ParamSpec("traversability.camera_yaw", 0.0, "camera yaw in radians, positive looking left",
              value_range=(-3.1416, 3.1416)),
    ParamSpec("traversability.camera_x", 0.0, "camera position ahead of the frame origin, m",
              value_range=(-100.0, 100.0)),
    ParamSpec("traversability.camera_y", 0.0, "camera position left of the frame origin, m",
              value_range=(-100.0, 100.0)),
)

SEGMENTATION_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "",
              "ONNX (.onnx) or PyTorch (.pt) model file; empty = the shipped model"),
    ParamSpec("backend", "ort", "inference back end: ort (ONNX Runtime) or torch",
              choices=BACKENDS),
    ParamSpec("device", "auto", "where to run the network: cuda, cpu, or auto (GPU if present)",
              choices=DEVICES),
    ParamSpec("providers", AUTO_PROVIDERS,
              "ONNX Runtime execution providers in priority order, e.g. "
              "[CUDAExecutionProvider, CPUExecutionProvider]; [auto] = chosen from device"),
    ParamSpec("input_width", 0, "network input width in pixels; 0 = the model's own",
              value_range=(0, 8192)),
    ParamSpec("input_height", 0, "network input height in pixels; 0 = the model's own",
              value_range=(0, 8192)),
    ParamSpec("classes_file", "",
              "classes YAML giving colours (and names) to the model's classes; empty = the "
              "shipped one where its names match the model's, else generated colours"),
    ParamSpec("engine_cache_dir", "",
              "TensorRT engine cache folder; empty = ~/.cache/dice_seg_ros/tensorrt/ plus the "
              "node's namespace and name, so instances never share engines"),
    ParamSpec("overlay_alpha", 0.5,
              "weight of the colour mask in ~/overlay (0 = camera only, 1 = mask only)",
              value_range=(0.0, 1.0), read_only=False),
    ParamSpec("image_topics", DEFAULT_IMAGE_TOPICS,
              "camera image topics, one per camera, segmented as one batch per cycle; each "
              "camera's outputs go under <its namespace>/<node name>/ (/front/image_raw -> "
              "/front/dice_seg/mask); [image] = one camera on the remappable image topic, "
              "outputs ~/mask etc."),
    ParamSpec("use_compressed", False,
              "subscribe to image/compressed (CompressedImage) instead of image (Image)"),
    ParamSpec("qos_reliability", AUTO,
              "reliability of the image subscription: auto (reliable when the camera publishes "
              "reliably, else best_effort), reliable, or best_effort",
              choices=(AUTO, *QOS_CHOICES)),
    ParamSpec("qos_depth", 1, "queue depth of the image subscription, in messages",
              value_range=(1, 100)),
    ParamSpec("publish_color", True, "publish ~/mask_color (rgb8 class colours)",
              read_only=False),
    ParamSpec("publish_overlay", True, "publish ~/overlay (rgb8 camera/mask blend)",
              read_only=False),
    ParamSpec("publish_confidence", False,
              "publish ~/confidence (32FC1 top-class probability)", read_only=False),
    ParamSpec("output_qos_reliability", "reliable",
              "reliability of the mask, colour, overlay, confidence and camera_info publishers",
              choices=QOS_CHOICES),
    ParamSpec("output_qos_depth", 5, "queue depth of the output publishers, in messages",
              value_range=(1, 100)),
    ParamSpec("min_fps", 5.0, "frame rate in Hz under which /diagnostics reports WARN",
              value_range=(0.0, 1000.0), read_only=False),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics messages, in seconds",
              value_range=(0.1, 60.0)),
    ParamSpec("estimated_dice_window", 30,
              "frames averaged in ~/estimated_dice_mean and the estimated-Dice /diagnostics "
              "status (published only when the model has a calibration, NAME.quality.json)",
              value_range=(1, 10000)),
    ParamSpec("estimated_dice_warn", 0.5,
              "windowed mean estimated Dice under which /diagnostics reports WARN",
              value_range=(0.0, 1.0), read_only=False),
    ParamSpec("estimated_dice_error", 0.3,
              "windowed mean estimated Dice under which /diagnostics reports ERROR",
              value_range=(0.0, 1.0), read_only=False),
    *TRAVERSABILITY_PARAMS,
)

MONITOR_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("classes_file", "", "classes YAML (names, colours); empty = the shipped one"),
    ParamSpec("label_format", "ids",
              "labels topic content: ids (mono8 class ids) or color (rgb8 class colours)",
              choices=LABEL_FORMATS),
    ParamSpec("sync_slop_s", 0.0,
              "largest stamp difference, in seconds, for a mask and a label to pair; 0 = "
              "equal stamps only (masks carry the camera header); set it only for label "
              "streams stamped differently",
              value_range=(0.0, 10.0)),
    ParamSpec("sync_queue_size", 30,
              "messages per topic kept while waiting for a partner; beyond it the oldest is "
              "dropped and counted as unpaired_*_buffer_full",
              value_range=(1, 10000)),
    ParamSpec("qos_reliability", "reliable",
              "reliability of the mask and labels subscriptions: best_effort or reliable",
              choices=QOS_CHOICES),
    ParamSpec("qos_depth", 30, "queue depth of the mask and labels subscriptions",
              value_range=(1, 10000)),
    ParamSpec("window_size", 30, "frames in the sliding-window Dice", value_range=(1, 100000)),
    ParamSpec("ema_alpha", 0.1, "weight of the newest frame in the per-class Dice EMA",
              value_range=(0.0, 1.0), exclusive_low=True),
    ParamSpec("warn_below", 0.6, "window mean Dice under which /diagnostics reports WARN",
              value_range=(0.0, 1.0), read_only=False),
    ParamSpec("error_below", 0.3, "window mean Dice under which /diagnostics reports ERROR",
              value_range=(0.0, 1.0), read_only=False),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics messages, in seconds",
              value_range=(0.1, 60.0)),
    ParamSpec("estimate_dice", False,
              "also subscribe to estimated_dice_stamped (the segmentation node's "
              "~/estimated_dice_stamped, diagnostic_msgs/DiagnosticArray with the camera header), "
              "join each estimate with its frame's true Dice by stamp, and report both per frame "
              "with MAE, Spearman and a scatter plot"),
    ParamSpec("report_dir", "dice_seg_report",
              "folder for report.json, per_frame.csv and plots, written on shutdown and by "
              "~/save_report; empty = no report on shutdown", read_only=False),
)

NODE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    SEGMENTATION_NODE: SEGMENTATION_PARAMS,
    MONITOR_NODE: MONITOR_PARAMS,
}


# (ERROR threshold, WARN threshold) parameter pairs: ERROR must not lie above WARN.
THRESHOLD_PAIRS = (("error_below", "warn_below"), ("estimated_dice_error", "estimated_dice_warn"))


def spec_map(specs: Sequence[ParamSpec]) -> dict[str, ParamSpec]:
    """Return the specs keyed by parameter name."""
    return {spec.name: spec for spec in specs}


def defaults(specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Return ``{name: default}``, string arrays as lists (as YAML and rclpy give them)."""
    return {spec.name: list(spec.default) if isinstance(spec.default, tuple) else spec.default
            for spec in specs}


def _type_matches(spec: ParamSpec, value: Any) -> bool:
    """Return True if ``value`` has the parameter's type (ints are accepted for doubles)."""
    kind = spec.type_name
    if kind == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        return _type_name(value) == kind
    except TypeError:
        return False


def _range_reason(spec: ParamSpec, value: float) -> str | None:
    """Return why a number lies outside the spec's range, or None."""
    low, high = spec.value_range
    if value < low or value > high or (spec.exclusive_low and value == low):
        opening = "(" if spec.exclusive_low else "["
        return f"{spec.name}={value!r} is outside {opening}{low}, {high}]"
    return None


def _providers_reason(value: Sequence[str]) -> str | None:
    """Return why a providers list is invalid, or None."""
    if list(value) == list(AUTO_PROVIDERS):
        return None
    bad = [v for v in value if not v.endswith("ExecutionProvider")]
    if not value or bad:
        return (f"providers={list(value)!r}: expected [auto] or ONNX Runtime provider names "
                f"ending in 'ExecutionProvider' (bad: {bad or 'empty list'})")
    return None


def _image_topics_reason(value: Sequence[str]) -> str | None:
    """Return why an image_topics list is invalid (empty, blank, shared namespace), or None."""
    if not value or any(not topic.strip("/ ") or topic.endswith("/") for topic in value):
        return f"image_topics={list(value)!r}: give one non-empty topic per camera"
    namespaces = [camera_namespace(topic) for topic in value]
    if len(set(namespaces)) != len(namespaces):
        return (f"image_topics={list(value)!r}: each camera needs its own namespace "
                f"(got {namespaces}); outputs go under <camera namespace>/<node name>/")
    return None


def validate(spec: ParamSpec, value: Any) -> str | None:
    """Return the reason ``value`` is not allowed for ``spec``, or None if it is."""
    if spec.type_name == "string_array" and not value:
        # ROS cannot type an empty list: `-p image_topics:=[]` arrives as None.
        return f"{spec.name} is empty; give at least one value, e.g. {list(spec.default)}"
    if not _type_matches(spec, value):
        return (f"{spec.name}={value!r} has type {type(value).__name__}; "
                f"expected {spec.type_name}")
    if spec.value_range is not None:
        return _range_reason(spec, value)
    if spec.choices is not None and value not in spec.choices:
        return f"{spec.name}={value!r} is not one of {list(spec.choices)}"
    if spec.name == "providers":
        return _providers_reason(value)
    if spec.name == "image_topics":
        return _image_topics_reason(value)
    return None


def validate_all(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> str | None:
    """Check each value and the relations between them; return the first reason or None.

    ``values`` holds the full set of parameter values after the change, so that
    relations such as ``error_below <= warn_below`` are checked on the result.
    """
    by_name = spec_map(specs)
    for name, value in values.items():
        if name not in by_name:
            return f"unknown parameter {name!r}; known: {sorted(by_name)}"
        reason = validate(by_name[name], value)
        if reason:
            return reason
    if "input_width" in values and "input_height" in values:
        size = (values["input_width"], values["input_height"])
        if any(size) and not all(size):
            return (f"input_width={size[0]} and input_height={size[1]}: set both "
                    "(pixels) or leave both 0 for the model's own size")
    for error, warn in THRESHOLD_PAIRS:
        if error in values and warn in values and values[error] > values[warn]:
            return f"{error}={values[error]} must not exceed {warn}={values[warn]}"
    return None
