"""Read and write rosbag2 files (sqlite3 and MCAP) without ROS, via ``rosbags``.

Messages are (de)serialised with the ROS 2 Jazzy typestore, so bags written here
open in ``ros2 bag``, Foxglove and RViz, and bags recorded on a robot read here.
Stamps are integer nanoseconds throughout.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from dice_seg_ros.errors import BagError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Return the shared ROS 2 Jazzy type store, built once (it takes ~100 ms)."""
    return get_typestore(Stores.ROS2_JAZZY)


def msg_class(msgtype: str) -> type:
    """Return the typestore class of ``msgtype``, e.g. ``sensor_msgs/msg/Image``."""
    return typestore().types[msgtype]


def make_header(stamp_ns: int, frame_id: str) -> Any:
    """Build a ``std_msgs/msg/Header`` for a stamp in nanoseconds."""
    time_cls = msg_class("builtin_interfaces/msg/Time")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return msg_class("std_msgs/msg/Header")(stamp=time_cls(sec=sec, nanosec=nanosec),
                                            frame_id=frame_id)


def header_stamp_ns(msg: Any) -> int:
    """Return ``msg.header.stamp`` in nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def remove_old_bag(path: Path) -> None:
    """Delete the bag directory ``path`` if it exists, so a command can write it anew.

    Only a rosbag2 directory (one with metadata.yaml) is removed, so a mistyped
    output path never deletes unrelated files.

    Raises:
        BagError: ``path`` exists and is not a bag.

    """
    if not path.exists():
        return
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} exists and is not a bag; remove it or choose another --out")
    shutil.rmtree(path)


class BagMessage(NamedTuple):
    """One deserialised message: topic, type, bag log time (ns) and message."""

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any


class BagReader:
    """Read a rosbag2 directory (sqlite3 or MCAP) or a bare ``.mcap``/``.db3`` file.

    Use as a context manager. Raises FileNotFoundError for a missing path and
    BagError (naming the path) for a bag that cannot be opened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except (ReaderError, FileNotFoundError, OSError, ValueError, KeyError) as exc:
            raise BagError(f"cannot open bag {self.path}: {exc}") from exc

    def __enter__(self) -> "BagReader":
        """Return the open reader."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the bag."""
        self.close()

    def close(self) -> None:
        """Close the bag (idempotent)."""
        if self._reader.is_open:
            self._reader.close()

    def topics(self) -> dict[str, str]:
        """Return ``{topic: message type}`` for every topic in the bag."""
        return {topic: info.msgtype or "<mixed types>"
                for topic, info in self._reader.topics.items()}

    def message_count(self, topic: str) -> int:
        """Return the number of messages on ``topic`` (from the bag's index)."""
        return self._reader.topics[topic].msgcount

    def check_topic(self, topic: str, expected: Iterable[str]) -> str:
        """Return the type of ``topic`` after checking it exists with an expected type.

        Raises:
            BagError: listing the bag's topics if ``topic`` is absent, or naming
                the topic, the expected and the actual type.

        """
        topics = self.topics()
        if topic not in topics:
            listing = ", ".join(f"{name} [{kind}]" for name, kind in sorted(topics.items()))
            raise BagError(f"topic {topic!r} not in bag {self.path}; "
                           f"the bag has: {listing or 'no topics'}")
        expected = tuple(expected)
        if topics[topic] not in expected:
            raise BagError(f"topic {topic!r} in bag {self.path} has type {topics[topic]}, "
                           f"expected {' or '.join(expected)}")
        return topics[topic]

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Yield the messages on ``topics`` in bag (log time) order, deserialised.

        Raises:
            BagError: naming the topic and log time of a message that cannot be
                read or deserialised (corrupt or truncated bag).

        """
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        store = typestore()
        where = "start of bag"
        try:
            for connection, log_time, raw in self._reader.messages(connections=connections):
                where = f"{connection.topic} at log time {log_time} ns"
                msg = store.deserialize_cdr(raw, connection.msgtype)
                yield BagMessage(connection.topic, connection.msgtype, log_time, msg)
        except (SerdeError, ReaderError, ValueError, IndexError, OSError) as exc:
            raise BagError(f"corrupt message in bag {self.path} ({where}): "
                           f"{type(exc).__name__}: {exc}") from exc


class BagWriter:
    """Write a rosbag2 bag directory in MCAP (default) or sqlite3 storage.

    Use as a context manager; on an exception inside the block the bag is still
    closed so that everything written so far stays readable.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage {storage!r}; choose from {sorted(STORAGES)}")
        self.path = Path(path)
        self._connections: dict[str, Any] = {}
        try:
            self._writer = Writer(self.path, version=Writer.VERSION_LATEST,
                                  storage_plugin=STORAGES[storage])
            self._writer.open()
        except WriterError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from exc

    def __enter__(self) -> "BagWriter":
        """Return the open writer."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the bag, writing its metadata."""
        self.close()

    def close(self) -> None:
        """Close the bag (idempotent)."""
        if self._writer.storage is not None:
            self._writer.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register ``topic`` with message type ``msgtype`` (once per topic)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore())

    def write(self, topic: str, log_time_ns: int, msg: Any) -> None:
        """Serialise ``msg`` and write it on ``topic`` (registered on first use)."""
        self.add_topic(topic, msg.__msgtype__)
        self.write_raw(topic, log_time_ns, typestore().serialize_cdr(msg, msg.__msgtype__))

    def write_raw(self, topic: str, log_time_ns: int, data: bytes) -> None:
        """Write already serialised bytes on a registered ``topic``."""
        if topic not in self._connections:
            raise BagError(f"topic {topic!r} was not added to bag {self.path}")
        self._writer.write(self._connections[topic], int(log_time_ns), data)
