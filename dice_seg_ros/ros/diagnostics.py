"""The diagnostics vocabulary of the nodes, without ROS types.

Levels, one status as plain data, and the builder of ``diagnostic_msgs/DiagnosticArray``
for whichever message classes the caller passes (rclpy's or rosbags'), so the
node cores, the monitor and the stamp-gap counter share one set of names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

LEVEL_OK = 0
LEVEL_WARN = 1
LEVEL_ERROR = 2
LEVEL_STALE = 3


@dataclass(frozen=True)
class StatusData:
    """Content of one ``diagnostic_msgs/DiagnosticStatus``, without ROS types.

    Attributes:
        name: status name shown by rqt_robot_monitor.
        level: LEVEL_OK, LEVEL_WARN, LEVEL_ERROR or LEVEL_STALE.
        message: one-line summary.
        hardware_id: what the status is about (back end and device).
        values: key-value details, values already formatted as strings.

    """

    name: str
    level: int
    message: str
    hardware_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


def _level_field(status_cls: type, level: int) -> Any:
    """Return ``level`` as the message class stores it: bytes in rclpy, int in rosbags."""
    return bytes([level]) if isinstance(status_cls.OK, bytes) else level


def diagnostic_array(statuses: Iterable[StatusData], header: Any, array_cls: type,
                     status_cls: type, key_value_cls: type) -> Any:
    """Build a ``diagnostic_msgs/DiagnosticArray`` from StatusData with the given classes."""
    return array_cls(header=header, status=[
        status_cls(level=_level_field(status_cls, s.level), name=s.name, message=s.message,
                   hardware_id=s.hardware_id,
                   values=[key_value_cls(key=k, value=v) for k, v in s.values.items()])
        for s in statuses])


def format_value(value: float, digits: int = 3) -> str:
    """Format a number for a diagnostics key-value ("nan" for NaN)."""
    return "nan" if value != value else f"{value:.{digits}f}"


# Key of the per-frame estimate in the stamped status (what the Dice monitor reads).
ESTIMATE_KEY = "estimated_dice"


def estimate_level(estimate: float, warn_below: float, error_below: float,
                   what: str) -> tuple[int, str]:
    """Return the status level and message of an estimated mean Dice against its thresholds.

    ``what`` names the figure in the message (e.g. "estimated mean Dice of 30 frames").
    """
    summary = f"{what} {estimate:.3f}"
    if estimate < error_below:
        return LEVEL_ERROR, f"{summary} < estimated_dice_error {error_below:.3f}"
    if estimate < warn_below:
        return LEVEL_WARN, f"{summary} < estimated_dice_warn {warn_below:.3f}"
    return LEVEL_OK, summary
