"""Mean milliseconds per pipeline stage, for eval reports and node diagnostics."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence


class StageLatency:
    """Milliseconds spent in each pipeline stage, as a mean per frame plus their sum ("total").

    Stage times are added as they are measured (:meth:`add`) and belong to the frame in
    progress until :meth:`end_frame`; time spent on a frame that never ends (one skipped for a
    decoding error) counts towards the next one, so the mean over all frames covers every
    millisecond spent. Without ``window`` every frame counts (running sums only, whatever the
    length of the run); with ``window`` only the last ``window`` frames.

    Args:
        stages: names of the stages, in report order.
        window: number of recent frames averaged, or None for all frames.

    Not thread-safe: callers that add and read from different threads hold their own lock.
    """

    def __init__(self, stages: Sequence[str], window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f"latency window must be >= 1 frame, got {window}")
        self.stages = tuple(stages)
        self.frames = 0
        self._open = dict.fromkeys(self.stages, 0.0)
        self._totals = dict.fromkeys(self.stages, 0.0)
        self._recent: deque[dict[str, float]] | None = (
            None if window is None else deque(maxlen=window))

    def add(self, stage: str, ms: float) -> None:
        """Add ``ms`` milliseconds to ``stage`` of the frame in progress."""
        if stage not in self._open:
            raise ValueError(f"unknown pipeline stage {stage!r}; stages are {list(self.stages)}")
        self._open[stage] += ms

    def end_frame(self, timings_ms: Mapping[str, float] | None = None) -> None:
        """Add ``timings_ms`` (stage -> milliseconds), if given, then close the frame."""
        for stage, ms in (timings_ms or {}).items():
            self.add(stage, ms)
        frame, self._open = self._open, dict.fromkeys(self.stages, 0.0)
        self.frames += 1
        if self._recent is not None:
            self._recent.append(frame)
            return
        for stage, ms in frame.items():
            self._totals[stage] += ms

    def mean_ms(self) -> dict[str, float]:
        """Return mean ms per frame of each stage and their sum ("total"); {} before any frame."""
        if self._recent is None:
            count, totals = self.frames, self._totals
        else:
            count = len(self._recent)
            totals = {stage: sum(frame[stage] for frame in self._recent)
                      for stage in self.stages}
        if not count:
            return {}
        means = {stage: ms / count for stage, ms in totals.items()}
        means["total"] = sum(means.values())
        return means
