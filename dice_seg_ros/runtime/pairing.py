"""Pair two streams (images or masks with labels) by header stamp, streaming and bounded.

Shared by ``dice-seg eval`` (bag replay) and the Dice monitor node, so both
pair the same messages. Stamps are integer nanoseconds. Every item that finds
no partner is counted under a reason (see ``UNPAIRED_REASONS``), never lost
silently.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")

STREAMS = ("image", "label")
# no_partner: the other stream moved past the item's window without a match.
# buffer_full: evicted, oldest first, when more than max_pending items of its stream waited.
# end: still waiting when the stream ended (flush).
UNPAIRED_REASONS = ("no_partner", "buffer_full", "end")


class Pair(NamedTuple, Generic[T]):
    """An image matched with its label; stamps in ns."""

    image_stamp_ns: int
    label_stamp_ns: int
    image: T
    label: T


def header_stamp_ns(header: Any) -> int:
    """Return a ``std_msgs/Header``'s stamp in nanoseconds (rclpy and rosbags messages alike)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass
class _Pending(Generic[T]):
    """Items of one stream waiting for a partner, kept sorted by stamp."""

    stamps: list[int] = field(default_factory=list)
    items: list[T] = field(default_factory=list)
    watermark: int = -(2 ** 63)

    def add(self, stamp: int, item: T) -> None:
        """Insert ``item`` at its stamp's place and raise the watermark."""
        index = bisect.bisect_right(self.stamps, stamp)
        self.stamps.insert(index, stamp)
        self.items.insert(index, item)
        self.watermark = max(self.watermark, stamp)

    def remove(self, indices: set[int]) -> None:
        """Drop the items at ``indices``."""
        self.stamps = [s for i, s in enumerate(self.stamps) if i not in indices]
        self.items = [x for i, x in enumerate(self.items) if i not in indices]


class StampPairer(Generic[T]):
    """Pair images with labels by header stamp, streaming, with bounded buffers.

    Each image is matched to the unused label nearest in stamp, at most
    ``max_offset_ms`` away; ``max_offset_ms=0`` pairs equal stamps only (masks
    carry their camera frame's header, so exact pairing never scores a label
    against a neighbouring frame's mask). Each label is used at most once. A
    match is final once both streams have moved past the window of both items
    or, with ``equal_is_final``, at once when the stamps are equal (nothing can
    be nearer; a live monitor then scores a pair without waiting a frame);
    stamps may arrive out of order within that window. When more than
    ``max_pending`` items of one stream wait (e.g. the label topic went
    silent), its oldest item is evicted, so memory stays bounded. Unpaired
    items are counted in ``unpaired[(stream, reason)]``.
    """

    def __init__(self, max_offset_ms: float = 20.0, max_pending: int = 64,
                 equal_is_final: bool = False) -> None:
        if max_offset_ms < 0:
            raise ValueError(f"max_offset_ms must be >= 0, got {max_offset_ms}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.max_offset_ns = int(round(max_offset_ms * 1e6))
        self.max_pending = max_pending
        self.equal_is_final = equal_is_final
        self.unpaired: Counter[tuple[str, str]] = Counter()
        self.paired = 0
        self._pending: dict[str, _Pending[T]] = {stream: _Pending() for stream in STREAMS}

    @property
    def unpaired_images(self) -> int:
        """Images that found no label, for any reason."""
        return self._unpaired_of("image")

    @property
    def unpaired_labels(self) -> int:
        """Labels that found no image, for any reason."""
        return self._unpaired_of("label")

    def _unpaired_of(self, stream: str) -> int:
        """Sum the unpaired counts of one stream over every reason."""
        return sum(n for (name, _), n in self.unpaired.items() if name == stream)

    def unpaired_by_reason(self) -> dict[str, int]:
        """Return ``{"<stream>_<reason>": count}`` for every stream and reason (zeros too)."""
        return {f"{stream}_{reason}": self.unpaired[(stream, reason)]
                for stream in STREAMS for reason in UNPAIRED_REASONS}

    def add_image(self, stamp_ns: int, image: T) -> list[Pair[T]]:
        """Add an image; return the pairs that became final."""
        return self._add("image", stamp_ns, image)

    def add_label(self, stamp_ns: int, label: T) -> list[Pair[T]]:
        """Add a label; return the pairs that became final."""
        return self._add("label", stamp_ns, label)

    def _add(self, stream: str, stamp_ns: int, item: T) -> list[Pair[T]]:
        """Add an item to ``stream``, settle, then evict the oldest items over the bound."""
        pending = self._pending[stream]
        pending.add(int(stamp_ns), item)
        pairs = self._settle(force=False)
        excess = len(pending.stamps) - self.max_pending
        if excess > 0:
            pending.remove(set(range(excess)))
            self.unpaired[(stream, "buffer_full")] += excess
        return pairs

    def flush(self) -> list[Pair[T]]:
        """Match everything still waiting (end of stream); return the final pairs."""
        return self._settle(force=True)

    @property
    def pending(self) -> int:
        """Number of images and labels still waiting for a partner."""
        return sum(len(p.stamps) for p in self._pending.values())

    def _candidates(self) -> list[tuple[int, int, int]]:
        """Return ``(|dt| ns, image index, label index)`` within the window, nearest first."""
        out = []
        labels = self._pending["label"].stamps
        for i, stamp in enumerate(self._pending["image"].stamps):
            lo = bisect.bisect_left(labels, stamp - self.max_offset_ns)
            hi = bisect.bisect_right(labels, stamp + self.max_offset_ns)
            out.extend((abs(labels[j] - stamp), i, j) for j in range(lo, hi))
        out.sort()
        return out

    def _settle(self, force: bool) -> list[Pair[T]]:
        """Commit matches that no later message can improve; drop hopeless items."""
        images, labels = self._pending["image"], self._pending["label"]
        # An item is settled once the other stream has passed beyond its window:
        # streams arrive (nearly) in stamp order, so no closer partner can come.
        image_done = labels.watermark - self.max_offset_ns
        label_done = images.watermark - self.max_offset_ns
        used_images: set[int] = set()
        used_labels: set[int] = set()
        matches = []
        for offset, i, j in self._candidates():
            if i in used_images or j in used_labels:
                continue
            # Greedy nearest-first matching; a tentative match still reserves both
            # items, so neither is dropped as unpaired while it may yet be final.
            used_images.add(i)
            used_labels.add(j)
            passed = images.stamps[i] < image_done and labels.stamps[j] < label_done
            if force or passed or (offset == 0 and self.equal_is_final):
                matches.append((i, j))
        pairs = [Pair(images.stamps[i], labels.stamps[j], images.items[i], labels.items[j])
                 for i, j in matches]
        reason = "end" if force else "no_partner"
        drop_images = {i for i, s in enumerate(images.stamps)
                       if i not in used_images and (force or s < image_done)}
        drop_labels = {j for j, s in enumerate(labels.stamps)
                       if j not in used_labels and (force or s < label_done)}
        self.paired += len(pairs)
        self.unpaired[("image", reason)] += len(drop_images)
        self.unpaired[("label", reason)] += len(drop_labels)
        images.remove(drop_images | {i for i, _ in matches})
        labels.remove(drop_labels | {j for _, j in matches})
        pairs.sort(key=lambda pair: pair.image_stamp_ns)
        return pairs
