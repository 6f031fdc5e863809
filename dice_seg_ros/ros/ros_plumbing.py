"""rclpy plumbing shared by the nodes: parameters, QoS, events, diagnostics, logging, run.

Only this module, the node modules and nothing else import rclpy. Everything a
node decides (values, statuses, messages) comes from the ROS-free cores; this
module moves it in and out of ROS.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from dice_seg_ros.errors import DiceSegError
from dice_seg_ros.ros.diagnostics import StatusData, diagnostic_array
from dice_seg_ros.ros.node_params import ParamSpec, defaults, validate_all

DIAGNOSTICS_TOPIC = "/diagnostics"
# Bad parameters, model or classes file: reported in one line, not a traceback.
STARTUP_ERRORS = (DiceSegError, FileNotFoundError, ValueError, ParameterException)
# The library's own Python loggers ("no GPU provider", ...) are forwarded to the node's.
LIBRARY_LOGGER = "dice_seg_ros"


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
    values = defaults(specs)
    declared = node.declare_parameters("", [(s.name, values[s.name], descriptor(s))
                                            for s in specs])
    values = {p.name: p.value for p in declared}
    reason = validate_all(specs, values)
    if reason:
        raise ValueError(f"{node.get_fully_qualified_name()}: invalid parameter: {reason}")
    return values


def warn_undeclared_overrides(node: Node) -> list[str]:
    """Warn about ``-p name:=value`` overrides that no parameter of the node declares.

    A misspelt parameter is otherwise ignored without a word. Call it after every parameter
    is declared; returns the names warned about.
    """
    # rclpy has no public accessor for the overrides it was started with (Jazzy).
    given = getattr(node, "_parameter_overrides", {})
    unknown = sorted(name for name in given if not node.has_parameter(name)
                     and not name.startswith("qos_overrides."))
    if unknown:
        node.get_logger().warning(
            f"ignoring parameter(s) this node does not have: {', '.join(unknown)} "
            f"(see `ros2 param list {node.get_fully_qualified_name()}`)")
    return unknown


def parameter_callback(node_values: dict[str, Any], specs: Sequence[ParamSpec],
                       apply: Callable[[dict[str, Any]], None]):
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


def qos_profile(reliability: str, depth: int, transient_local: bool = False) -> QoSProfile:
    """Return a keep-last QoS profile; ``reliability`` is "best_effort" or "reliable".

    ``transient_local`` keeps the last ``depth`` messages for late subscribers
    (for data published once, such as the class table).
    """
    policy = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
              else ReliabilityPolicy.RELIABLE)
    durability = DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy,
                      durability=durability)


class KindThrottle:
    """Decide which errors to log: at most one per kind per ``period_s``, none lost from view.

    Each kind (e.g. the exception type and topic) has its own clock, so a burst
    of one error cannot hide a different one. Suppressed messages are counted
    and reported with the next logged message of that kind.
    """

    def __init__(self, period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def admit(self, kind: str) -> int | None:
        """Count one error of ``kind``; return how many were suppressed before it, or None.

        None means: do not log this one (its kind was logged less than ``period_s`` ago).
        """
        self.counts[kind] += 1
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            self._suppressed[kind] += 1
            return None
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)


class NodeLog:
    """A node's logger with per-kind error throttling; the one place nodes log errors."""

    def __init__(self, node: Node, period_s: float = 5.0) -> None:
        self.node = node
        self.throttle = KindThrottle(period_s)

    def error(self, kind: str, message: str) -> None:
        """Log ``message`` as an error unless ``kind`` was logged less than the period ago."""
        self._throttled(kind, message, self.node.get_logger().error)

    def warn(self, kind: str, message: str) -> None:
        """Log ``message`` as a warning, throttled per ``kind`` as errors are."""
        self._throttled(kind, message, self.node.get_logger().warning)

    def _throttled(self, kind: str, message: str, log: Callable[[str], Any]) -> None:
        """Log through ``log`` unless ``kind`` was logged less than the period ago."""
        suppressed = self.throttle.admit(kind)
        if suppressed is None:
            return
        more = f" ({suppressed} more {kind} since the last report)" if suppressed else ""
        log(f"{message}{more}")

    def exception(self, where: str, exc: BaseException) -> None:
        """Log an exception, throttled per (``where``, exception type)."""
        self.error(f"{where}/{type(exc).__name__}", f"{where}: {type(exc).__name__}: {exc}")


class QosEvents:
    """Incompatible-QoS and message-lost events of a node's endpoints, logged and counted.

    Frames lost in transport (too large for best effort, a slow reader) show up
    here, so /diagnostics tells them apart from frames the node chose to drop.
    """

    def __init__(self, log: NodeLog) -> None:
        self._log = log
        self.counts: Counter[str] = Counter()
        self.lost_by_topic: Counter[str] = Counter()

    def subscription(self, topic: str) -> SubscriptionEventCallbacks:
        """Return event callbacks for a subscription on ``topic``."""
        return SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._incompatible(topic, info),
            message_lost=lambda info: self._lost(topic, info))

    def publisher(self, topic: str) -> PublisherEventCallbacks:
        """Return event callbacks for a publisher on ``topic``."""
        return PublisherEventCallbacks(
            incompatible_qos=lambda info: self._incompatible(topic, info))

    def _incompatible(self, topic: str, info: Any) -> None:
        """Count and log an incompatible-QoS event."""
        self.counts["qos_incompatible"] += 1
        self._log.error(f"qos_incompatible/{topic}",
                        f"{topic}: QoS incompatible with a peer (policy id "
                        f"{info.last_policy_kind}); no messages flow between them")

    def _lost(self, topic: str, info: Any) -> None:
        """Count and log messages the middleware lost before the node could take them.

        A warning, not an error: a best-effort camera losing a frame is the contract of best
        effort, and the node segments the newest frame anyway.
        """
        self.counts["messages_lost"] += int(info.total_count_change)
        self.lost_by_topic[topic] += int(info.total_count_change)
        self._log.warn(f"message_lost/{topic}",
                       f"{topic}: {info.total_count_change} message(s) lost in transport "
                       f"({info.total_count} in all)")

    def values(self, topic: str | None = None) -> dict[str, str]:
        """Return the counts as diagnostics key-values; lost messages of ``topic`` if given."""
        lost = self.counts["messages_lost"] if topic is None else self.lost_by_topic[topic]
        return {"qos_incompatible": str(self.counts["qos_incompatible"]),
                "messages_lost": str(lost)}


def status_name(node: Node, what: str) -> str:
    """Return a diagnostics status name unique per node instance: ``/ns/name: what``."""
    return f"{node.get_fully_qualified_name()}: {what}"


def publish_diagnostics(node: Node, publisher: Any, statuses: Sequence[StatusData]) -> None:
    """Publish StatusData items as one DiagnosticArray stamped with the node's clock."""
    header = Header(stamp=node.get_clock().now().to_msg())
    publisher.publish(diagnostic_array(statuses, header, DiagnosticArray, DiagnosticStatus,
                                       KeyValue))


def create_diagnostics_publisher(node: Node) -> Any:
    """Create the node's /diagnostics publisher."""
    return node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)


class _NodeLoggerHandler(logging.Handler):
    """Send Python ``logging`` records to a node's rclpy logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._node = node

    def emit(self, record: logging.LogRecord) -> None:
        """Log the record at its level through the node's logger."""
        logger = self._node.get_logger()
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            logger.error(message)
        elif record.levelno >= logging.WARNING:
            logger.warning(message)
        elif record.levelno >= logging.INFO:
            logger.info(message)
        else:
            logger.debug(message)


def forward_library_logging(node: Node) -> Callable[[], None]:
    """Route the library's Python log records to ``node``'s logger; return the undo function."""
    handler = _NodeLoggerHandler(node)
    library = logging.getLogger(LIBRARY_LOGGER)
    library.addHandler(handler)
    previous_level, previous_propagate = library.level, library.propagate
    library.setLevel(logging.INFO)
    library.propagate = False

    def undo() -> None:
        library.removeHandler(handler)
        library.setLevel(previous_level)
        library.propagate = previous_propagate
    return undo


def ignore_further_sigint() -> None:
    """Ignore SIGINT from now on in this process (main thread only; elsewhere no-op).

    Ctrl-C on ``ros2 launch`` in a terminal reaches each node twice: the
    terminal signals the whole process group and launch forwards its own
    SIGINT. The second one, raised as KeyboardInterrupt in the middle of the
    shutdown report or ``destroy_node``, would lose the report and end the
    process with -2 ("process has died") instead of 0.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_node(make_node: Callable[[], Node], name: str, args: Sequence[str] | None = None,
             on_exit: Callable[[Node], None] | None = None) -> int:
    """Start rclpy, build a node, spin it until shutdown, clean up; return the exit code.

    A bad parameter, model or classes file ends the process with one line on
    stderr and exit code 1 instead of a traceback. SIGINT and SIGTERM (what
    ``ros2 launch`` sends) end spinning; ``on_exit(node)`` then runs before the
    node is destroyed. Further SIGINTs are ignored from then on (see
    ignore_further_sigint); SIGTERM still ends a node whose cleanup hangs.
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
    except rclpy_implementation.RCLError:
        # A callback publishing while a signal shuts the context down fails with
        # "context is invalid": that is a normal stop, not an error exit.
        if rclpy.ok():
            raise
    finally:
        ignore_further_sigint()
        if on_exit is not None:
            on_exit(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
