"""Read and write rosbag2 files (sqlite3 and MCAP) without ROS, via ``rosbags``.

Messages are (de)serialised with the ROS 2 Jazzy typestore, so bags written here
open in ``ros2 bag``, Foxglove and RViz, and bags recorded on a robot read here.
Stamps are integer nanoseconds throughout.
"""

from __future__ import annotations

import shutil
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from rosbags.rosbag2 import Reader, StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from dice_seg_ros.bags.bag_salvage import (McapSalvage, RawMessage, SqliteSalvage, StorageFault,
                                           ros2_type_name)
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


class BadMessage(NamedTuple):
    """A message whose bytes do not deserialise: topic, type, log time (ns), why."""

    topic: str
    msgtype: str
    log_time_ns: int
    error: str


class _RosbagsSource:
    """Raw messages of a bag ``rosbags`` could open (the normal case)."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def topics(self) -> dict[str, str]:
        return {topic: ros2_type_name(info.msgtype) if info.msgtype else "<mixed types>"
                for topic, info in self._reader.topics.items()}

    def counts(self) -> dict[str, int | None]:
        return {topic: info.msgcount for topic, info in self._reader.topics.items()}

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        connections = [c for c in self._reader.connections if c.topic in topics]
        for connection, log_time, raw in self._reader.messages(connections=connections):
            yield RawMessage(connection.topic, ros2_type_name(connection.msgtype), log_time, raw)


def _salvage_reader(path: Path) -> McapSalvage | SqliteSalvage:
    """Open ``path`` (a .mcap or .db3 file) with the salvage reader of its storage."""
    if path.suffix == ".mcap":
        return McapSalvage(path)
    if path.suffix == ".db3":
        return SqliteSalvage(path)
    raise BagError(f"no salvage reader for {path.name} (only .mcap and .db3 files)")


class BagReader:
    """Read a rosbag2 directory (sqlite3 or MCAP) or a bare ``.mcap``/``.db3`` file.

    Use as a context manager. A bag ``rosbags`` cannot open (a directory without
    ``metadata.yaml``, an MCAP file without footer, a damaged database) is read
    by the salvage readers of :mod:`dice_seg_ros.bags.bag_salvage` up to the damage;
    ``salvage`` then says why. ``messages_read`` and ``last_log_time_ns`` say
    how far reading got.

    Raises:
        FileNotFoundError: the path does not exist.
        BagError: naming the path (and ``metadata.yaml`` for a directory lacking
            it) when neither ``rosbags`` nor salvage can open the bag.

    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        self.salvage: str | None = None
        self.messages_read = 0
        self.last_log_time_ns: int | None = None
        self._source = self._open()

    def _storage_files(self) -> list[Path]:
        """Return the .mcap/.db3 files of the bag (the path itself if it is a file)."""
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.iterdir() if p.suffix in (".mcap", ".db3"))

    def _open(self) -> _RosbagsSource | McapSalvage | SqliteSalvage:
        """Open with ``rosbags``; fall back to salvage for one damaged storage file."""
        files = self._storage_files()
        target = self.path
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            if len(files) != 1:
                raise BagError(f"cannot open bag {self.path}: it has no metadata.yaml and "
                               f"{len(files)} .mcap/.db3 files; pass one of them as the bag")
            target = files[0]
            self.salvage = f"no metadata.yaml in {self.path}; read {target.name} alone"
        try:
            reader = Reader(target)
            reader.open()
            return _RosbagsSource(reader)
        # rosbags lets its storage layers' own exception types through (apsw,
        # zstd, struct, yaml), so any failure to open is treated alike.
        except Exception as exc:  # noqa: BLE001
            first = f"{type(exc).__name__}: {exc}"
        if len(files) != 1:
            raise BagError(f"cannot open bag {self.path}: {first}")
        try:
            source = _salvage_reader(files[0])
        except BagError as exc:
            raise BagError(f"cannot open bag {self.path}: {first} (and {exc})") from None
        self.salvage = (f"{files[0]} could not be opened whole ({first}); read record by "
                        f"record up to the damage")
        return source

    def __enter__(self) -> "BagReader":
        """Return the open reader."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the bag."""
        self.close()

    def close(self) -> None:
        """Close the bag (idempotent)."""
        self._source.close()

    def topics(self) -> dict[str, str]:
        """Return ``{topic: message type}`` (``pkg/msg/Name``) for every topic in the bag."""
        return self._source.topics()

    def message_count(self, topic: str) -> int | None:
        """Return the number of messages on ``topic``, or None where it is unknown."""
        return self._source.counts()[topic]

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

    def _where(self) -> str:
        """Describe the last message read, for error messages."""
        if self.last_log_time_ns is None:
            return "before the first message"
        return (f"after {self.messages_read} messages, last good log time "
                f"{self.last_log_time_ns} ns")

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage | BadMessage]:
        """Yield the messages on ``topics`` in bag order, deserialised.

        A message whose bytes do not deserialise is yielded as a
        :class:`BadMessage` and reading goes on.

        Raises:
            StorageFault: the storage layer failed mid-bag (corrupt database
                page, MCAP CRC or decompression error, I/O error, cut-off file);
                the message names the error and the last good log time.

        """
        raw_messages = self._source.messages(set(topics))
        store = typestore()
        while True:
            try:
                raw = next(raw_messages, None)
            except StorageFault as exc:
                raise StorageFault(f"{exc} ({self._where()})") from exc
            # Storage layers raise their own types (apsw.CorruptError, zstd and
            # lz4 errors, struct.error, OSError): all of them end reading here.
            except Exception as exc:  # noqa: BLE001
                raise StorageFault(f"storage error in bag {self.path} ({self._where()}): "
                                   f"{type(exc).__name__}: {exc}") from exc
            if raw is None:
                return
            try:
                msg = store.deserialize_cdr(raw.data, raw.msgtype)
            except (SerdeError, ValueError, IndexError, KeyError, struct.error) as exc:
                yield BadMessage(raw.topic, raw.msgtype, raw.log_time_ns,
                                 f"{raw.topic} at log time {raw.log_time_ns} ns does not "
                                 f"deserialise as {raw.msgtype}: {type(exc).__name__}: {exc}")
                continue
            self.messages_read += 1
            self.last_log_time_ns = raw.log_time_ns
            yield BagMessage(raw.topic, raw.msgtype, raw.log_time_ns, msg)


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
