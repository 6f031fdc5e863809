"""Count frames that cannot be decoded or scored, by reason, instead of stopping.

Shared by ``dice-seg eval`` and the Dice monitor node, so both skip the same
frames for the same reasons and report the same counters: ``kind -> count``
plus the first few stamps (ns) and the first message of each kind.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

# Reasons a frame is skipped (the keys of report.json "errors").
MESSAGE = "message"            # the bag message does not deserialise
IMAGE = "image_decode"         # the camera image cannot be converted to RGB
MASK = "mask_decode"           # the predicted mask (monitor input) is not mono8 ids
LABEL = "label_decode"         # the label cannot be converted to class ids
SIZE = "size_mismatch"         # image (or mask) and label sizes differ
FIRST_STAMPS = 5               # stamps kept per kind


@dataclass
class FrameErrors:
    """Skipped frames per reason, with the first stamps (ns) and message of each."""

    counts: dict[str, int] = field(default_factory=dict)
    first_stamps_ns: dict[str, list[int]] = field(default_factory=dict)
    first_message: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, stamp_ns: int | None, message: str) -> None:
        """Count one skipped frame under ``kind``; ``stamp_ns`` None when unknown."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        stamps = self.first_stamps_ns.setdefault(kind, [])
        if stamp_ns is not None and len(stamps) < FIRST_STAMPS:
            stamps.append(int(stamp_ns))
        self.first_message.setdefault(kind, message)

    @contextmanager
    def step(self, kind: str, stamp_ns: int | None) -> Iterator[None]:
        """Count a ValueError (ImageEncodingError included) of one step, then re-raise it.

        The caller decides whether the frame is skipped or the run stops; either
        way the error is counted once, under the step that raised it.
        """
        try:
            yield
        except ValueError as exc:
            self.add(kind, stamp_ns, str(exc))
            raise

    @property
    def total(self) -> int:
        """Frames skipped, all reasons together."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """Return ``{kind: {"count", "first_stamps_ns", "first_message"}}`` for report.json."""
        return {kind: {"count": count, "first_stamps_ns": list(self.first_stamps_ns[kind]),
                       "first_message": self.first_message[kind]}
                for kind, count in sorted(self.counts.items())}
