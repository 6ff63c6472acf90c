"""Writer for a cluster target: a slot router over one StandaloneWriter per master.

Entries go to the master owning ``key_slot(entry.key)``; entries without a key (FLUSHALL,
FUNCTION LOAD, SCRIPT...) go to every master; a MULTI ... EXEC block goes whole to the node of
its first key. A ``PackedRun`` (many keys in one entry) cannot be routed: it is refused with a
TypeError (the pipeline's transform packs no runs for a cluster target). Redirect replies come
back from the standalone writers through ``on_redirect``: MOVED refreshes the topology and
re-sends, ASK sends ASKING + the command to the named node, TRYAGAIN / CLUSTERDOWN re-send after
a capped backoff. Per-key order holds because re-sending waits until every in-flight reply is in
(all redirects of a slot are then collected, in order) and new writes wait for the re-sends.

A cluster has only db 0. Whether the source has other dbs is not known at start (the pipeline
declares ``multi_db`` for its default db mode even when the source only has db 0), so the first
entry for a db other than 0 raises IncompatibleTargetError from ``write`` before it is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from cachemigrate.engine.entry import Command, Entry, PackedRun, Piece, Routable
from cachemigrate.engine.status import KeyFailure
from cachemigrate.engine.writers.base import FailureLog, WriterOptions, WriterStats
from cachemigrate.engine.writers.standalone import StandaloneWriter
from cachemigrate.errors import CacheMigrateError, IncompatibleTargetError, MigrationError
from cachemigrate.protocol.cluster import Topology, fetch_topology, key_slot
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint

MAX_ATTEMPTS = 16
_ASKING = [b"ASKING"]


class ClusterWriter:
    def __init__(self, endpoint: Endpoint, options: WriterOptions | None = None) -> None:
        self.endpoint = endpoint.with_db(None)
        self.options = options or WriterOptions()
        self.topology: Topology | None = None
        self._writers: dict[tuple[str, int], StandaloneWriter] = {}
        self._route: list[StandaloneWriter] = []  # index in topology.masters -> writer
        self._redirected: list[tuple[Routable, str]] = []
        self._attempts: dict[int, int] = {}  # id(entry) -> sends; the entries are in _redirected
        self._failures = FailureLog(kept=self.options.failures_kept)
        self._own = WriterStats()  # failures decided here (no master, redirections exhausted)
        self._sent_offset = 0
        self._applied = 0
        self._lock = asyncio.Lock()  # one re-send round at a time
        self.refreshes = 0
        self.max_attempts = MAX_ATTEMPTS  # sends of one entry before it becomes a failure

    def __repr__(self) -> str:
        return f"<ClusterWriter {self.endpoint.display_url()}>"

    async def start(self) -> None:
        await self._refresh()

    async def _refresh(self) -> None:
        addresses = [(w.endpoint.host, w.endpoint.port) for w in self._route] or [
            (self.endpoint.host, self.endpoint.port)
        ]
        last: Exception | None = None
        for host, port in addresses:
            try:
                conn = await Connection.open(dataclasses.replace(self.endpoint, host=host, port=port))
            except CacheMigrateError as exc:  # that node is gone: ask the next one
                last = exc
                continue
            try:
                self.topology = await fetch_topology(conn)
            finally:
                await conn.close()
            break
        else:
            raise last or MigrationError("no cluster node answered")
        route = []
        for m in self.topology.masters:
            w = self._writers.get((m.host, m.port))
            if w is None:
                ep = dataclasses.replace(self.endpoint, host=m.host, port=m.port)
                w = StandaloneWriter(ep, self.options, on_redirect=self._on_redirect)
                await w.start()
                self._writers[(m.host, m.port)] = w
            route.append(w)
        self._route = route
        self.refreshes += 1

    def _writer_for(self, host: str, port: int) -> StandaloneWriter | None:
        return self._writers.get((host, port))

    def _on_redirect(self, entry: Routable, message: str) -> bool:
        self._redirected.append((entry, message))
        return True

    # -- the role ----------------------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        total = WriterStats()
        busy = []
        for w in self._writers.values():
            total.add(w.stats)
            if w.pending:
                busy.append(w.applied_offset)
        candidate = min(busy) if busy else self._sent_offset
        if not self._redirected and not self._lock.locked():
            self._applied = max(self._applied, candidate)
        total.applied_offset = self._applied
        total.add(self._own)
        return total

    @property
    def failures(self) -> list[KeyFailure]:
        out = list(self._failures.items)
        for w in self._writers.values():
            out += w.failures
        return out

    async def write(self, entries: Sequence[Entry]) -> None:
        if self._redirected:
            await self._resend()
        groups = self._group(entries)
        await self._send(groups)
        if entries:
            self._sent_offset = max(self._sent_offset, entries[-1].source_offset)

    async def flush(self) -> None:
        while True:
            await asyncio.gather(*(w.flush() for w in self._writers.values()))
            if not self._redirected:
                return
            await self._resend()

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self._writers.values()), return_exceptions=True)

    # -- routing -----------------------------------------------------------------------------

    def _group(self, entries: Sequence[Entry]) -> dict[int, list[Routable]]:
        assert self.topology is not None
        owner = self.topology.owner
        nmasters = len(self._route)
        groups: dict[int, list[Routable]] = {}
        i, n = 0, len(entries)
        while i < n:
            e = _routable(entries[i])
            i += 1
            if e.db > 0:
                raise IncompatibleTargetError(
                    f"{self.endpoint.display_url()} is a cluster: it has only db 0, and an entry "
                    f"is for db {e.db} (migrate one db, or fold every db into db 0)"
                )
            key = e.key
            if key is None:
                if e.name.upper() == b"MULTI":
                    j = i
                    while j < n and entries[j].name.upper() not in (b"EXEC", b"DISCARD"):
                        j += 1
                    block = [e, *map(_routable, entries[i : j + 1])]
                    i = j + 1
                    first = next((x.key for x in block if x.key is not None), None)
                    slot = owner[key_slot(first)] if first is not None else 0
                    groups.setdefault(max(slot, 0), []).extend(block)
                    continue
                for m in range(nmasters):
                    groups.setdefault(m, []).append(e)
                continue
            m = owner[key_slot(key)]
            if m < 0:
                self._fail(e, "CLUSTERDOWN no master serves this key's slot")
                continue
            groups.setdefault(m, []).append(e)
        return groups

    async def _send(self, groups: dict[int, list[Routable]]) -> None:
        route = self._route
        if len(groups) == 1:
            m, batch = next(iter(groups.items()))
            await route[m].write(batch)
        elif groups:
            await asyncio.gather(*(route[m].write(b) for m, b in groups.items()))

    async def _resend(self) -> None:
        """Collect every redirect (all replies in), then re-send them in their original order."""
        async with self._lock:
            for _ in range(self.max_attempts * 4):
                await asyncio.gather(*(w.flush() for w in self._writers.values()))
                items, self._redirected = self._redirected, []
                if not items:
                    # Every reply is in: each re-sent entry has landed or failed.
                    self._attempts.clear()
                    return
                await self._resend_round(items)
            raise MigrationError(f"{self.endpoint.display_url()}: cluster redirections do not settle")

    async def _resend_round(self, items: list[tuple[Routable, str]]) -> None:
        kinds = {msg.split(" ", 1)[0] for _, msg in items}
        if kinds & {"TRYAGAIN", "CLUSTERDOWN"}:
            worst = max(self._attempts.get(id(e), 0) for e, _ in items)
            await asyncio.sleep(min(2.0, 0.02 * 2**worst))
        if "MOVED" in kinds or "CLUSTERDOWN" in kinds:
            await self._refresh()
        direct: dict[StandaloneWriter, list[Routable]] = {}
        retry: list[Routable] = []
        for e, msg in items:
            tries = self._attempts.get(id(e), 0) + 1
            self._attempts[id(e)] = tries
            if tries >= self.max_attempts:
                self._attempts.pop(id(e), None)
                self._fail(e, f"{msg} (gave up after {tries} attempts)")
                continue
            if msg.startswith("ASK "):
                host, _, port = msg.split()[2].rpartition(":")
                w = self._writer_for(host, int(port))
                if w is None:
                    ep = dataclasses.replace(self.endpoint, host=host, port=int(port))
                    w = StandaloneWriter(ep, self.options, on_redirect=self._on_redirect)
                    await w.start()
                    self._writers[(host, int(port))] = w
                direct.setdefault(w, []).extend((Command(list(_ASKING), db=-1), e))
            else:
                retry.append(e)
        for w, batch in direct.items():
            await w.write(batch)
        if retry:
            await self._send(self._group(retry))

    def _fail(self, e: Routable, message: str) -> None:
        name = e.name.decode("ascii", "replace").upper()
        failure = KeyFailure(e.db, e.key, name, message)
        self._own.commands_failed += 1
        if e.tag:
            self._own.keys_failed += 1
        self._failures.add(failure)
        if self.options.on_failure is not None:
            self.options.on_failure(failure)


def _routable(e: Entry) -> Routable:
    if type(e) is PackedRun or type(e) is Piece:
        raise TypeError(f"a cluster writer cannot route a {type(e).__name__} (many keys, or part of "
                        "a command, in one entry); the transform for a cluster target must not make it")
    return e
