"""Reading keys on two servers at once and saying which differ: ``Comparer`` (one connection
per server and db), the pipelined SCAN both the full comparison and verify's sampling walk, and
``explain`` (which source key a target key comes from, under the rules).

Reads go over the project's own connection (protocol/connection.py), pipelined, both servers at
once (engine/keystate.py): per batch of SCAN keys one pipeline per side of ``TYPE`` + ``PTTL`` +
``DUMP`` for every key, the next SCAN already on the wire. Equal DUMP payloads (footer left out)
are equal values; only where they differ (another encoding: a listpack against a hash table,
another field order, a downgraded payload, or a real difference) is the value read as such and
compared in a normal form. A server that refuses DUMP (renamed, ACL) is read by value.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence

from cachemigrate.engine.differences import Kind, judge
from cachemigrate.engine.keystate import (
    ABSENT,
    KeyState,
    can_dump,
    read_states,
    read_values,
    same_payload,
)
from cachemigrate.engine.ruled_view import RuledView
from cachemigrate.errors import CacheMigrateError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint

BATCH = 1000


class Comparer:
    """Reads keys on both servers and says which differ; one connection per server and db.

    ``check`` reads the states of keys on both sides at once, the values where the payloads do
    not settle it. With ``prev`` (source states read earlier, verify's re-checks) the target's
    values are also read where they could match the earlier source state instead. The source is
    read through ``view`` (a key its rules leave out reads as ABSENT; source db -1: none).
    """

    def __init__(
        self, source: Endpoint, target: Endpoint, *, ttl_tolerance_ms: int = 1000,
        view: RuledView | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.tol = ttl_tolerance_ms
        self.view = view or RuledView()
        self.source_dbs: list[int] = []  # the source's dbs, for sources_of_db
        self._conns: dict[tuple[bool, int], Connection] = {}
        self._dump = {True: True, False: True}  # per side: does the server let us DUMP?

    async def conn(self, on_source: bool, db: int) -> Connection:
        c = self._conns.get((on_source, db))
        if c is None or c.is_closed:
            ep = self.source if on_source else self.target
            c = await Connection.open(ep, db=db, name="cachemigrate-compare")
            self._conns[(on_source, db)] = c
        return c

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            with contextlib.suppress(CacheMigrateError, OSError):
                await c.close()

    async def _states(self, on_source: bool, db: int, keys: Sequence[bytes]) -> list[KeyState]:
        conn = await self.conn(on_source, db)
        states = await read_states(conn, keys, dump=self._dump[on_source])
        if self._dump[on_source] and any(s.exists and s.payload is None for s in states):
            self._dump[on_source] = await can_dump(conn)
        return states

    def judge(self, s: KeyState, t: KeyState, now: int) -> Kind | None:
        v = self.view
        return judge(s, t, self.tol, now, skip_ms=v.skip_ms, max_ttl_ms=v.max_ttl_ms)

    async def _source_states(self, sdb: int, keys: Sequence[bytes]) -> list[KeyState]:
        v = self.view
        if sdb < 0:
            return [ABSENT] * len(keys)
        states = await self._states(True, sdb, keys)
        if v.identity:
            return states
        ok = v.name_ok
        return [ABSENT if s.exists and ((ok is not None and not ok(k)) or not v.type_ok(s.type)) else s
                for k, s in zip(keys, states, strict=True)]

    async def check(
        self, sdb: int, tdb: int, keys: Sequence[bytes], prev: Sequence[KeyState] | None = None,
        tkeys: Sequence[bytes] | None = None,
    ) -> tuple[list[KeyState], list[KeyState]]:
        """(source states, target states) of source ``keys`` (on the target: ``tkeys``, the same
        when None), values read where they are needed."""
        tkeys = keys if tkeys is None else tkeys
        src, tgt = await asyncio.gather(self._source_states(sdb, keys), self._states(False, tdb, tkeys))
        need_s: list[int] = []
        need_t: list[int] = []
        for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
            if s.exists and s.type == t.type and not same_payload(s, t):
                need_s.append(i)
                need_t.append(i)
            elif prev is not None:
                p = prev[i]
                if p.exists and p.type == t.type and not same_payload(p, t):
                    need_t.append(i)
        reads = []
        if need_s:
            reads.append(self._values(True, sdb, keys, src, need_s))
        if need_t:
            reads.append(self._values(False, tdb, tkeys, tgt, need_t))
        if reads:
            await asyncio.gather(*reads)
        return src, tgt

    async def _values(
        self, on_source: bool, db: int, keys: Sequence[bytes], states: list[KeyState], idx: list[int]
    ) -> None:
        await read_values(await self.conn(on_source, db), [keys[i] for i in idx], [states[i] for i in idx])

    async def exists(self, on_source: bool, db: int, keys: Sequence[bytes]) -> list[bool]:
        conn = await self.conn(on_source, db)
        replies = await conn.pipeline([(b"EXISTS", k) for k in keys])
        return [r == 1 for r in replies]

    def sources_of_db(self, tdb: int) -> list[int]:
        """The source dbs (of ``source_dbs``, set by who read the source's keyspace) the rules
        send to target db ``tdb``."""
        return [d for d in self.source_dbs if self.view.target_db(d) == tdb]

    async def exists_through(self, sdb: int, keys: Sequence[bytes]) -> list[bool]:
        """Whether each source key exists and is of a type the rules let through."""
        if not self.view.has_type_rules:
            return await self.exists(True, sdb, keys)
        conn = await self.conn(True, sdb)
        replies = await conn.pipeline([(b"TYPE", k) for k in keys])
        return [isinstance(t, bytes) and t != b"none" and self.view.type_ok(t) for t in replies]


async def scan_batches(conn: Connection, count: int = BATCH) -> AsyncGenerator[list[bytes], None]:
    """SCAN the connection's db; the next SCAN is on the wire while the caller uses a batch."""
    pending = asyncio.ensure_future(conn.execute("SCAN", b"0", "COUNT", count))
    try:
        while True:
            cursor, keys = await pending
            done = cursor in (b"0", 0, "0")
            if not done:
                pending = asyncio.ensure_future(conn.execute("SCAN", cursor, "COUNT", count))
            if keys:
                yield keys
            if done:
                return
    finally:
        if not pending.done():
            pending.cancel()


async def explain(
    comparer: Comparer, tdb: int, tkeys: list[bytes]
) -> list[tuple[int, bytes, bool]]:
    """For each key of target db ``tdb``: (source db, source key, whether that source key
    exists and the rules bring it there). When none does, the pair a re-check reads (the first
    source db mapped to ``tdb``, -1 when none is, and the first name the rename gives)."""
    view = comparer.view
    if view.identity:
        if tdb not in comparer.source_dbs:  # (a db the source may not even have)
            return [(tdb, k, False) for k in tkeys]
        found = await comparer.exists(True, tdb, tkeys)
        return [(tdb, k, there) for k, there in zip(tkeys, found, strict=True)]
    sdbs = comparer.sources_of_db(tdb)
    names = [view.sources_of(k) for k in tkeys]
    out = [(sdbs[0] if sdbs else -1, n[0] if n else k, False) for k, n in zip(tkeys, names, strict=True)]
    for sdb in sdbs:
        todo = [(i, n) for i, ns in enumerate(names) if not out[i][2] for n in ns]
        if not todo:
            break
        states = await comparer.exists_through(sdb, [n for _, n in todo])
        for (i, n), there in zip(todo, states, strict=True):
            if there and not out[i][2]:
                out[i] = (sdb, n, True)
    return out
