"""A cluster source: one SyncReader per master shard, merged into one Reader.

``open_sync_reader`` is where a replication source becomes a reader: this one when the source is
a cluster (``cluster_enabled:1``), a ``SyncReader`` otherwise.

The shards' replication offsets cannot be compared, so the merged reader renumbers entries with
its own sequence (``source_offset``) and remembers, per batch, which shard's offsets the numbers
stand for. ``checkpoint(applied)`` turns the writer's applied sequence number back into one
offset per shard and asks each shard's reader for its checkpoint; they travel in
``Checkpoint.extra["shards"]`` (keyed by host:port) and are handed back to the shard readers on
resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.entry import Entry
from cachemigrate.engine.flow import TokenBucket
from cachemigrate.engine.readers.base import ReaderContext, ReaderProgress
from cachemigrate.engine.readers.source_offsets import fetch_info
from cachemigrate.engine.readers.sync import SyncReader
from cachemigrate.engine.status import LogLevel, Phase
from cachemigrate.errors import CacheMigrateError, ConfigError
from cachemigrate.protocol.cluster import fetch_topology
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import DEFAULT_REPL_TIMEOUT

HISTORY_MAX = 200_000
_DONE = object()


CLUSTER_REPLID = "cluster"  # the replid of a merged checkpoint (one per shard in its extra)


def is_cluster_checkpoint(cp: Checkpoint) -> bool:
    """Whether ``cp`` is the merged checkpoint of a cluster source (no exactly-once marker)."""
    return cp.replid == CLUSTER_REPLID


async def open_sync_reader(
    endpoint: Endpoint, context: ReaderContext, *, start: Checkpoint | None = None
) -> SyncReader | ClusterSourceReader:
    """The reader of a replication source: one per shard, merged, when it is a cluster."""
    try:
        cluster = (await fetch_info(endpoint, "cluster")).get("cluster_enabled") == "1"
    except (CacheMigrateError, TimeoutError):
        cluster = False  # the replication link will report what is wrong
    cls = ClusterSourceReader if cluster else SyncReader
    return cls(endpoint, context, start=start)


class ClusterSourceReader:
    """Every master of the cluster ``endpoint`` belongs to, replicated at once."""

    source_kind = "cluster"

    def __init__(
        self,
        endpoint: Endpoint,
        context: ReaderContext,
        *,
        start: Checkpoint | None = None,
        repl_timeout: float = DEFAULT_REPL_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.context = context
        self.events = context.events
        self.start = start
        self.repl_timeout = repl_timeout
        self.shards: list[SyncReader] = []
        self._seq = start.offset if start is not None else 0
        self._history: deque[tuple[int, int, list[int]]] = deque()  # first seq, shard, offsets
        self._shard_applied: list[int] = []
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        for s in self.shards:
            s.stop()

    def progress(self) -> ReaderProgress:
        ps = [s.progress() for s in self.shards]
        if not ps:
            return ReaderProgress(phase=Phase.CONNECTING)
        phases = {p.phase for p in ps}
        phase = next((p for p in (Phase.CONNECTING, Phase.FULL) if p in phases), Phase.INCREMENTAL)
        lags = [p.lag_seconds for p in ps if p.lag_seconds is not None]
        totals = [p.bytes_total for p in ps]
        return ReaderProgress(
            phase=phase,
            bytes_read=sum(p.bytes_read for p in ps),
            bytes_total=None if None in totals else sum(t or 0 for t in totals),
            keys_read=sum(p.keys_read for p in ps),
            lag_seconds=max(lags) if lags else None,
            caught_up=all(p.caught_up for p in ps),
            resumes_continue=sum(p.resumes_continue for p in ps),
            resumes_fullresync=sum(p.resumes_fullresync for p in ps),
            message=f"{len(ps)} shards",
        )

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        if not self.shards:
            return self.start
        hist = self._history
        while hist and hist[0][0] <= applied_offset:
            first, shard, offsets = hist[0]
            k = min(len(offsets), applied_offset - first + 1)
            self._shard_applied[shard] = max(self._shard_applied[shard], offsets[k - 1])
            if k < len(offsets):
                break
            hist.popleft()
        shards: dict[str, Any] = {}
        full = False
        for reader, applied in zip(self.shards, self._shard_applied, strict=True):
            cp = reader.checkpoint(applied)
            if cp is None:
                full = True
                continue
            full = full or cp.phase == "full"
            shards[reader.endpoint.address] = dataclasses.asdict(cp)
        return Checkpoint(self.endpoint.address, CLUSTER_REPLID, applied_offset,
                          phase="full" if full else "incremental", extra={"shards": shards})

    async def batches(self) -> AsyncIterator[list[Entry]]:
        conn = await Connection.open(self.endpoint, name="cachemigrate-control")
        try:
            topology = await fetch_topology(conn)
        finally:
            with contextlib.suppress(CacheMigrateError, OSError):
                await conn.close()
        saved = dict(self.start.extra.get("shards", {})) if self.start is not None else {}
        bw = self.context.options.bandwidth_mb
        bucket = TokenBucket(bw) if bw else None
        for node in topology.masters:
            ep = dataclasses.replace(self.endpoint, host=node.host, port=node.port, db=None)
            raw = saved.get(ep.address)
            start = Checkpoint.from_json(json.dumps(raw)) if raw else None
            if self.start is not None and start is None:
                self.events.log(LogLevel.WARNING, f"{ep.address}: no checkpoint for this shard: full sync")
            self.shards.append(SyncReader(
                ep, self.context, start=start, repl_timeout=self.repl_timeout, bucket=bucket,
            ))
            self._shard_applied.append(start.offset if start is not None else -1)
        if not self.shards:
            raise ConfigError(f"{self.endpoint.display_url()}: the cluster has no master")
        self.events.log(LogLevel.INFO, f"cluster source: {len(self.shards)} master shards "
                        f"({', '.join(s.endpoint.address for s in self.shards)})")
        async for batch in self._merge():
            yield batch

    async def _merge(self) -> AsyncIterator[list[Entry]]:
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(maxsize=2 * len(self.shards))

        async def pump(i: int, reader: SyncReader) -> None:
            try:
                async for batch in reader.batches():
                    await queue.put((i, batch))
            except BaseException as exc:
                await queue.put((i, exc))
                raise
            await queue.put((i, _DONE))

        tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(self.shards)]
        running = len(tasks)
        try:
            while running:
                i, item = await queue.get()
                if item is _DONE:
                    running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                if item:
                    yield self._renumber(i, item)
                else:
                    yield item
                if self._stopped:
                    return
        finally:
            for s in self.shards:
                s.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _renumber(self, shard: int, batch: list[Entry]) -> list[Entry]:
        offsets = [e.source_offset for e in batch]
        first = self._seq + 1
        for e in batch:
            self._seq += 1
            e.source_offset = self._seq
        self._history.append((first, shard, offsets))
        if len(self._history) > HISTORY_MAX:
            self._history.popleft()  # nobody asks for checkpoints: precision is not needed
        return batch
