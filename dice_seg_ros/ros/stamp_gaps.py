"""Frames lost before the node, counted from gaps in a camera's stamp sequence.

Not every middleware reports lost messages (a best-effort reader that never
saw a fragment of a large image may get no event at all), but a camera stamps
its frames at a steady rate: a stamp that comes two periods after the previous
one means one frame never arrived. ``StampGaps`` estimates the period from the
stamps themselves and counts the frames missing between consecutive ones. ROS-free.
"""

from __future__ import annotations

from collections import deque

from dice_seg_ros.ros.diagnostics import format_value

# Deltas kept for the period estimate, and the lowest quantile of them taken
# as the period: with a loss rate p, a fraction 1 - p of the deltas are one
# period, so the estimate holds up to 75 % loss where a median would double.
PERIOD_HISTORY = 50
PERIOD_QUANTILE = 0.25
# Deltas needed before gaps are counted (the period is unknown before).
MIN_DELTAS = 5


class StampGaps:
    """Count frames missing from a stream of header stamps (nanoseconds).

    Attributes:
        received: stamps seen.
        missing: frames estimated missing between them.
        restarts: times the stamps went backwards (a bag looped, a camera restarted);
            the period estimate starts again after each.

    """

    def __init__(self, history: int = PERIOD_HISTORY) -> None:
        self.received = 0
        self.missing = 0
        self.restarts = 0
        self._last_ns: int | None = None
        self._deltas: deque[int] = deque(maxlen=history)

    @property
    def period_ns(self) -> int | None:
        """The camera period estimated from recent stamps, in ns; None while unknown."""
        if len(self._deltas) < MIN_DELTAS:
            return None
        ordered = sorted(self._deltas)
        return ordered[int(PERIOD_QUANTILE * (len(ordered) - 1))]

    def add(self, stamp_ns: int) -> int:
        """Take the next frame's stamp; return how many frames are missing just before it."""
        self.received += 1
        last, self._last_ns = self._last_ns, stamp_ns
        if last is None or stamp_ns == last:
            return 0
        if stamp_ns < last:
            self.restarts += 1
            self._deltas.clear()
            return 0
        delta = stamp_ns - last
        period = self.period_ns
        self._deltas.append(delta)
        if period is None:
            return 0
        gap = max(0, round(delta / period) - 1)
        self.missing += gap
        return gap

    def values(self) -> dict[str, str]:
        """Return the counts as diagnostics key-values; the period in ms, "nan" while unknown."""
        period = self.period_ns
        return {"frames_missing_in_stamps": str(self.missing),
                "camera_period_ms": format_value(float("nan") if period is None
                                                 else period / 1e6, 2),
                "stamp_restarts": str(self.restarts)}
