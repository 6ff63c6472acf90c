"""Online source for servers that refuse SYNC/PSYNC: SCAN every db, pipelined DUMP + PTTL.

Full copy only: writes made while the scan runs may or may not be seen (SCAN guarantees only
that keys present from start to end are returned). Each DUMP payload is split into the RDB type
byte and value so the transform builds the RESTORE exactly as for an RDB key (footer relabelled
for the target).

Expiry: RESTORE ... ABSTTL needs the absolute expire time, which must not depend on how long the
round trip took (a loaded machine or a slow link delays requests and replies by seconds; a clock
read before the request makes short-TTL keys arrive expired, one read after the reply lengthens
every TTL by the reply's delay). So the source says it, in the order of preference (chosen once
per node, with a probe on its first key):

1. ``PEXPIRETIME`` (Redis 7.0+, Valkey): the absolute time itself; no clock of ours is involved.
2. ``PTTL`` and ``TIME`` right after it, per key, in the same pipeline: the source's clock when
   it answered (one command apart; a key may live those microseconds longer, never shorter).
   One ``TIME`` per batch would not do: a source stalled inside a batch (a busy machine) would
   lengthen every TTL after the stall by its length.
3. ``PTTL`` with our clock read when the replies are in (a user allowed neither command): never
   shorter either, but longer by the replies' delay — logged once as a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.entry import Entry
from cachemigrate.engine.filters import compile_rules
from cachemigrate.engine.flow import TokenBucket
from cachemigrate.engine.readers.base import ReaderProgress, RecordTransform, TransformFactory
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.engine.status import EventSink, LogLevel, Phase
from cachemigrate.errors import CacheMigrateError, ServerError
from cachemigrate.formats.rdb.model import NO_EXPIRE, KeyRecord, RdbHeader
from cachemigrate.protocol.cluster import fetch_topology
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_info, parse_keyspace

SCAN_COUNT = 1000
_FOOTER = 10  # RDB version (2 bytes) + CRC64 (8 bytes)

# How a node's expire times are read (module docstring).
_ABSOLUTE = "PEXPIRETIME"
_SERVER_CLOCK = "PTTL+TIME"
_LOCAL_CLOCK = "PTTL"


class ScanReader:
    """SCAN + DUMP + PTTL over every db with keys (per INFO keyspace), on every master of a cluster."""

    source_kind = "scan"

    def __init__(
        self,
        endpoint: Endpoint,
        options: PipelineOptions,
        *,
        transform_factory: TransformFactory,
        events: EventSink,
        count: int = SCAN_COUNT,
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.transform_factory = transform_factory
        self.events = events
        self.count = count
        self._bucket = TokenBucket(options.bandwidth_mb) if options.bandwidth_mb else None
        self._stopped = False
        self._phase = Phase.CONNECTING
        self._keys = 0
        self._bytes = 0
        self._total_keys: int | None = None
        self._tf: RecordTransform | None = None
        self._seq = 0
        self._mode: str | None = None  # read_keys: the expiry mode of its connection's node
        # The filter rules on names, asked before DUMP: a key left behind is not read at all.
        flt = compile_rules(options.filters)
        self._wanted = flt.key_ok if flt is not None else None
        self._dbmap = DbMap(options)
        self._filtered = 0

    def stop(self) -> None:
        self._stopped = True

    def progress(self) -> ReaderProgress:
        return ReaderProgress(
            phase=self._phase, bytes_read=self._bytes, keys_read=self._keys, keys_filtered=self._filtered,
            message=f"{self._keys} of ~{self._total_keys} keys" if self._total_keys else "",
        )

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        return None  # a scan is re-run from the start (RESTORE REPLACE is idempotent)

    async def batches(self) -> AsyncIterator[list[Entry]]:
        nodes = await self._nodes()
        self._total_keys = 0
        self._phase = Phase.FULL
        for ep in nodes:
            async for batch in self._scan_node(ep):
                yield batch
                if self._stopped:
                    return
        self._phase = Phase.DONE

    async def read_keys(self, conn: Connection, db: int, keys: list[bytes]) -> list[Entry]:
        """The entries that copy ``keys`` of ``db`` as they are now, read on ``conn`` (one node,
        db ``db`` selected): what verify's repair writes. Keys gone from the source have none."""
        if not keys:
            return []
        if self._mode is None:
            self._mode = await self._expiry_mode(conn, keys[0])
        return await self._dump(conn, db, keys, self._mode)

    async def _nodes(self) -> list[Endpoint]:
        """The endpoint itself, or every master when it belongs to a cluster."""
        conn = await Connection.open(self.endpoint, name="cachemigrate-scan")
        try:
            info = parse_info(_text(await conn.execute("INFO", "cluster")))
            if info.get("cluster_enabled") != "1":
                return [self.endpoint]
            topology = await fetch_topology(conn)
            return [dataclasses.replace(self.endpoint, host=m.host, port=m.port, db=None)
                    for m in topology.masters]
        finally:
            with contextlib.suppress(CacheMigrateError, OSError):
                await conn.close()

    async def _scan_node(self, ep: Endpoint) -> AsyncIterator[list[Entry]]:
        conn = await Connection.open(ep, name="cachemigrate-scan")
        try:
            space = parse_keyspace(parse_info(_text(await conn.execute("INFO", "keyspace"))))
            dbs = sorted(space)
            if self.options.db_mode is DbMode.ONLY:
                dbs = [d for d in dbs if d == self.options.db]
            dbs = [d for d in dbs if self._dbmap.target(d) is not None]  # the db rules' too
            keys = sum(space[d] for d in dbs)
            modes: list[str] = []  # the node's expiry mode, probed on its first key
            self._total_keys = (self._total_keys or 0) + keys
            self.events.log(LogLevel.INFO, f"{ep.address}: scanning {keys} keys "
                            f"in db {', '.join(map(str, dbs)) or '-'}")
            for db in dbs:
                await conn.execute("SELECT", db)
                async for batch in self._scan_db(conn, db, modes):
                    yield batch
                    if self._stopped:
                        return
        finally:
            with contextlib.suppress(CacheMigrateError, OSError):
                await conn.close()

    async def _scan_db(self, conn: Connection, db: int, modes: list[str]) -> AsyncIterator[list[Entry]]:
        cursor = b"0"
        while True:
            reply = await conn.execute("SCAN", cursor, "COUNT", self.count)
            cursor, keys = reply[0], reply[1]
            if keys and self._wanted is not None:
                wanted = self._wanted
                n = len(keys)
                keys = [k for k in keys if wanted(k)]
                self._filtered += n - len(keys)
            if keys:
                if not modes:
                    modes.append(await self._expiry_mode(conn, keys[0]))
                batch = await self._dump(conn, db, keys, modes[0])
                if batch:
                    yield batch
            if cursor in (b"0", 0, "0") or self._stopped:
                return

    async def _expiry_mode(self, conn: Connection, key: bytes) -> str:
        """The best way this node allows to read absolute expire times (module docstring)."""
        for mode, args in ((_ABSOLUTE, ("PEXPIRETIME", key)), (_SERVER_CLOCK, ("TIME",))):
            try:
                await conn.execute(*args)
                return mode
            except ServerError:  # unknown command (before 7.0), or not allowed to this user
                continue
        self.events.log(LogLevel.WARNING, "the source allows neither PEXPIRETIME nor TIME: TTLs are "
                        "counted from when its replies arrive, so a slow link lengthens them by its delay")
        return _LOCAL_CLOCK

    async def _dump(self, conn: Connection, db: int, keys: list[bytes], mode: str) -> list[Entry]:
        calls = []
        expiry = "PEXPIRETIME" if mode == _ABSOLUTE else "PTTL"
        stride = 3 if mode == _SERVER_CLOCK else 2
        for k in keys:
            calls.append(conn.execute("DUMP", k))
            calls.append(conn.execute(expiry, k))
            if stride == 3:
                calls.append(conn.execute("TIME"))  # the clock the PTTL just before counts from
        replies: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
        local = time.time_ns() // 1_000_000  # only for _LOCAL_CLOCK (or a TIME reply missing)
        out: list[Entry] = []
        nbytes = 0
        for i, key in enumerate(keys):
            payload, when = replies[stride * i], replies[stride * i + 1]
            if isinstance(payload, BaseException) or isinstance(when, BaseException):
                err = payload if isinstance(payload, BaseException) else when
                if not isinstance(err, CacheMigrateError):
                    raise err
                self.events.log(LogLevel.ERROR, f"db {db} key {key[:64]!r}: cannot DUMP: {err}")
                continue
            if payload is None or when == -2:
                continue  # deleted between SCAN and DUMP
            nbytes += len(payload)
            if when < 0:
                expire = NO_EXPIRE
            elif mode == _ABSOLUTE:
                expire = when
            else:
                clock = replies[stride * i + 2] if stride == 3 else None
                base = int(clock[0]) * 1000 + int(clock[1]) // 1000 if isinstance(clock, list) else local
                expire = base + when
            rec = KeyRecord(
                db=db, key=key, type_byte=payload[0], value=payload[1:-_FOOTER], expire_ms=expire
            )
            self._keys += 1
            for e in self._transform(payload).key(rec):
                self._seq += 1
                e.source_offset = self._seq
                out.append(e)
        self._bytes += nbytes
        if self._bucket is not None:
            await self._bucket.consume(nbytes)
        return out

    def _transform(self, payload: bytes) -> RecordTransform:
        if self._tf is None:
            version = int.from_bytes(payload[-_FOOTER : -_FOOTER + 2], "little")
            self._tf = self.transform_factory(RdbHeader("VALKEY" if version >= 80 else "REDIS", version))
        return self._tf


def _text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
