"""Which keys of a batch the target already holds: counts replaced keys, guards --no-replace.

Used only when the target had keys when the run started (an empty target has nothing to replace,
and the check costs a round trip per batch). RESTORE without REPLACE protects existing keys by
itself (BUSYKEY, counted as skipped by the writer); plain-command rewrites cannot, so with
``replace=False`` their entries are dropped here for keys the target already has.
"""

from __future__ import annotations

from collections.abc import Sequence

from cachemigrate.engine.entry import Entry
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint

_RESTORE = b"RESTORE"


class PresenceCheck:
    def __init__(self, endpoint: Endpoint, *, replace: bool) -> None:
        self.endpoint = endpoint
        self.replace = replace
        self.replaced = 0  # keys written over an existing key (replace mode)
        self.skipped = 0  # keys kept as they were (no-replace mode, rewrite path)
        self._conns: dict[int, Connection] = {}
        self._kept: set[tuple[int, bytes]] = set()  # keys whose later entries (chunks) are dropped

    async def filter(self, batch: Sequence[Entry]) -> list[Entry]:
        """The batch without entries that would touch keys to keep; counts what it sees."""
        firsts: dict[int, list[bytes]] = {}
        for e in batch:
            if e.tag and e.key is not None and e.db >= 0:
                firsts.setdefault(e.db, []).append(e.key)
        present: set[tuple[int, bytes]] = set()
        for db, keys in firsts.items():
            conn = await self._conn(db)
            replies = await conn.pipeline([(b"EXISTS", k) for k in keys])
            present.update((db, k) for k, r in zip(keys, replies, strict=True) if r == 1)
        if self.replace:
            self.replaced += len(present)
            return list(batch)
        out: list[Entry] = []
        kept = self._kept
        for e in batch:
            ident = (e.db, e.key) if e.key is not None else None
            if ident is not None and e.tag:
                if ident in present:
                    if e.name == _RESTORE:
                        out.append(e)  # RESTORE without REPLACE: BUSYKEY keeps it, the writer counts
                        continue
                    kept.add(ident)
                    self.skipped += 1
                    continue
                kept.discard(ident)
            elif ident is not None and ident in kept:
                continue
            out.append(e)
        return out

    async def _conn(self, db: int) -> Connection:
        conn = self._conns.get(db)
        if conn is None:
            conn = self._conns[db] = await Connection.open(self.endpoint, db=db, name="cachemigrate-check")
        return conn

    async def close(self) -> None:
        for conn in self._conns.values():
            await conn.close()
        self._conns.clear()
