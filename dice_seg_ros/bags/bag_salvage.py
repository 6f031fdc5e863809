"""Read what is left of a damaged or unfinished rosbag2 storage file.

``rosbags`` opens a finished bag only: an MCAP file needs its footer, a
sqlite3 bag directory its ``metadata.yaml``, and a database whose message
table is damaged fails on open. A robot that lost power leaves exactly such
files. The readers here read them front to back, record by record, up to the
damage (as ``mcap recover`` does) and then raise :class:`StorageFault` naming
where reading stopped.

Each reader yields raw ``(topic, msgtype, log time ns, CDR bytes)`` tuples;
``bag_io.BagReader`` deserialises them as it does for ``rosbags``.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple


from dice_seg_ros.errors import BagError

if TYPE_CHECKING:
    from mcap.data_stream import ReadDataStream
    from mcap.records import Chunk

MCAP_MAGIC = b"\x89MCAP0\r\n"
# MCAP opcodes (https://mcap.dev/spec): records the salvage reads or stops at.
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK, _OP_FOOTER, _OP_DATA_END = (
    0x03, 0x04, 0x05, 0x06, 0x02, 0x0F)
_RECORD_HEADER = 9  # opcode (1 byte) + record length (uint64)
# sqlite3 file header: page size at bytes 16-17, page count at 28-31 (big-endian).
_SQLITE_HEADER = 100


class RawMessage(NamedTuple):
    """One serialised message: topic, type, bag log time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


class StorageFault(BagError):
    """The storage layer failed or ended mid-bag; nothing after this point can be read."""


def ros2_type_name(msgtype: str) -> str:
    """Return ``pkg/msg/Name`` for a type name, accepting Dashing-era ``pkg/Name``."""
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype


class _Torn(Exception):
    """A record runs past the end of the data (the file was cut inside it)."""

    def __init__(self, opcode: int | None, body: bytes) -> None:
        super().__init__(opcode)
        self.opcode = opcode
        self.body = body


def _walk(buf: memoryview, pos: int) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(opcode, body)`` of each complete record of ``buf`` from byte ``pos``.

    Hand-written framing: the ``mcap`` package's readers accept a short read as a
    whole record, so a cut file would yield a message with truncated data.

    Raises:
        _Torn: at a record (or record header) cut off by the end of ``buf``.

    """
    end = len(buf)
    while pos < end:
        if pos + _RECORD_HEADER > end:
            raise _Torn(None, b"")
        opcode = buf[pos]
        body_end = pos + _RECORD_HEADER + int.from_bytes(buf[pos + 1:pos + 9], "little")
        if body_end > end:
            raise _Torn(opcode, bytes(buf[pos + _RECORD_HEADER:end]))
        yield opcode, buf[pos + _RECORD_HEADER:body_end]
        pos = body_end


def _stream(body: bytes | memoryview) -> ReadDataStream:
    from mcap.data_stream import ReadDataStream

    return ReadDataStream(BytesIO(bytes(body)))


class _LazyRecords:
    """``mcap.records``, imported on first use: only damaged MCAP files need the package."""

    def __getattr__(self, name: str) -> Any:
        from mcap import records as module

        return getattr(module, name)


records = _LazyRecords()


class McapSalvage:
    """Read an MCAP file without its summary or footer, record by record.

    Messages are read in file order (a recorder writes them in log-time order).
    Complete chunks are decompressed and CRC-checked by the ``mcap`` package; of
    a chunk torn by the end of the file, the complete messages are kept when it
    is uncompressed (the usual rosbag2 setting).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            self._file.close()
            raise BagError(f"cannot salvage {path}: the file is empty") from exc
        if self._map[:len(MCAP_MAGIC)] != MCAP_MAGIC:
            self.close()
            raise BagError(f"cannot salvage {path}: it does not start with the MCAP magic")
        self._topics: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        # One pass over the file lists the topics and counts what can be read.
        for message in self._scan(stop_quietly=True):
            self._counts[message.topic] += 1

    def close(self) -> None:
        """Release the file (the mapping goes with the last message view still alive)."""
        self._file.close()
        try:
            self._map.close()
        except BufferError:
            pass  # a reader generator not yet collected still holds a view of it

    def topics(self) -> dict[str, str]:
        """Return ``{topic: type}`` of the channels found before the damage."""
        return dict(self._topics)

    def counts(self) -> dict[str, int]:
        """Return the number of readable messages per topic."""
        return {topic: self._counts[topic] for topic in self._topics}

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        """Yield the readable messages on ``topics``; raise StorageFault at the damage."""
        for message in self._scan(stop_quietly=False):
            if message.topic in topics:
                yield message

    def _scan(self, stop_quietly: bool) -> Iterator[RawMessage]:
        """Walk the file; at the damage, stop (``stop_quietly``) or raise StorageFault."""
        channels: dict[int, tuple[str, str]] = {}
        schemas: dict[int, str] = {}
        try:
            for message in self._records(memoryview(self._map), channels, schemas):
                yield message
        except StorageFault:
            if not stop_quietly:
                raise

    def _records(self, buf: memoryview, channels: dict[int, tuple[str, str]],
                 schemas: dict[int, str]) -> Iterator[RawMessage]:
        """Yield messages of the top level of the file, then raise StorageFault if cut."""
        try:
            for opcode, body in _walk(buf, len(MCAP_MAGIC)):
                if opcode in (_OP_DATA_END, _OP_FOOTER):
                    return
                if opcode == _OP_CHUNK:
                    yield from self._chunk(records.Chunk.read(_stream(body)), channels,
                                           schemas)
                else:
                    yield from self._record(opcode, body, channels, schemas)
        except _Torn as torn:
            if torn.opcode == _OP_CHUNK:
                yield from self._torn_chunk(torn.body, channels, schemas)
            raise StorageFault(f"{self.path} ends inside a record (the recording was cut "
                               f"off)") from None
        except StorageFault:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is damage; see module doc
            raise StorageFault(f"{self.path} is damaged: {type(exc).__name__}: {exc}") from exc
        raise StorageFault(f"{self.path} has no data end or footer record (the recording "
                           f"was not finished)")

    def _chunk(self, chunk: Chunk, channels: dict[int, tuple[str, str]],
               schemas: dict[int, str]) -> Iterator[RawMessage]:
        """Yield the messages of a complete chunk (decompressed, CRC checked)."""
        from mcap.stream_reader import get_chunk_data_stream

        stream, size = get_chunk_data_stream(chunk, validate_crc=True)
        data = memoryview(stream.read(size))
        for opcode, body in _walk(data, 0):
            yield from self._record(opcode, body, channels, schemas)

    def _torn_chunk(self, body: bytes, channels: dict[int, tuple[str, str]],
                    schemas: dict[int, str]) -> Iterator[RawMessage]:
        """Yield the complete messages at the start of a chunk cut off by the file end."""
        try:
            chunk = records.Chunk.read(_stream(body))
        except Exception:  # noqa: BLE001 - a chunk header cut short holds nothing to read
            return
        if chunk.compression:
            return
        try:
            for opcode, record in _walk(memoryview(chunk.data), 0):
                yield from self._record(opcode, record, channels, schemas)
        except _Torn:
            return

    def _record(self, opcode: int, body: memoryview, channels: dict[int, tuple[str, str]],
                schemas: dict[int, str]) -> Iterator[RawMessage]:
        """Register a schema or channel, or yield a message on a known channel."""
        if opcode == _OP_SCHEMA:
            schema = records.Schema.read(_stream(body))
            schemas[schema.id] = ros2_type_name(schema.name)
        elif opcode == _OP_CHANNEL:
            channel = records.Channel.read(_stream(body))
            msgtype = schemas.get(channel.schema_id, "<unknown type>")
            channels[channel.id] = (channel.topic, msgtype)
            self._topics.setdefault(channel.topic, msgtype)
        elif opcode == _OP_MESSAGE:
            message = records.Message.read(_stream(body), len(body))
            if message.channel_id not in channels:
                raise StorageFault(f"{self.path}: message on unknown channel "
                                   f"{message.channel_id}")
            topic, msgtype = channels[message.channel_id]
            yield RawMessage(topic, msgtype, message.log_time, message.data)


def _pad_to_header_size(path: Path) -> tempfile.TemporaryDirectory | None:
    """Copy a cut-off database, padded with zero pages to its header's size; else None.

    SQLite refuses a whole database whose schema names pages past the end of
    the file, although the pages before the cut are intact. In the padded copy
    those pages exist (as zeros, read as damage where a query reaches them).
    The padding is a sparse hole, so only the surviving bytes are copied.
    """
    with open(path, "rb") as stream:
        header = stream.read(_SQLITE_HEADER)
    if len(header) < _SQLITE_HEADER:
        raise BagError(f"cannot salvage {path}: shorter than a sqlite3 header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    expected = int.from_bytes(header[28:32], "big") * page_size
    if path.stat().st_size >= expected:
        return None
    copy = tempfile.TemporaryDirectory(prefix="dice_seg_salvage_")
    target = Path(copy.name) / path.name
    shutil.copyfile(path, target)
    os.truncate(target, expected)
    return copy


class SqliteSalvage:
    """Read a rosbag2 sqlite3 database alone: no metadata.yaml, no full-table scan.

    Rows are read in insertion (rowid) order, which is recording order, so a
    damaged page ends reading there instead of failing the whole query as the
    ``ORDER BY timestamp`` scan of a normal open does.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._padded = _pad_to_header_size(path)
        readable = path if self._padded is None else Path(self._padded.name) / path.name
        try:
            self._db = sqlite3.connect(f"file:{readable}?mode=ro&immutable=1", uri=True)
            rows = self._db.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.Error as exc:
            raise BagError(f"cannot salvage {path}: {type(exc).__name__}: {exc}") from exc
        self._topics = {int(tid): (str(name), ros2_type_name(str(kind)))
                        for tid, name, kind in rows}

    def close(self) -> None:
        """Close the database (and delete the padded copy, if any)."""
        self._db.close()
        if self._padded is not None:
            self._padded.cleanup()

    def topics(self) -> dict[str, str]:
        """Return ``{topic: type}`` from the topics table."""
        return dict(self._topics.values())

    def counts(self) -> dict[str, int | None]:
        """Return ``None`` per topic: counting would read the damaged pages too."""
        return {topic: None for topic, _ in self._topics.values()}

    def messages(self, topics: set[str]) -> Iterator[RawMessage]:
        """Yield the rows on ``topics`` in recording order; raise StorageFault at damage."""
        ids = [tid for tid, (topic, _) in self._topics.items() if topic in topics]
        query = (f"SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN "
                 f"({','.join('?' * len(ids))}) ORDER BY id")
        try:
            for tid, stamp, data in self._db.execute(query, ids):
                topic, msgtype = self._topics[tid]
                yield RawMessage(topic, msgtype, int(stamp), bytes(data))
        except sqlite3.Error as exc:
            raise StorageFault(f"{self.path} is damaged: {type(exc).__name__}: {exc}") from exc
