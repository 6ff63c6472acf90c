"""How many keys a server holds in the dbs a migration covers: the ``source_dbsize`` and
``target_dbsize`` of the status, read from the servers themselves (not counted from what this
run read or wrote, which starts again at 0 when a run resumes with ``+CONTINUE``).

``KeyCount.sample()`` reads INFO keyspace over one control connection, kept open between samples
and opened again after a failure; a failed sample leaves the last value (a target that is down
still holds what it held). One key the migration added itself (the exactly-once marker,
engine/exactly_once.py) is left out; whether it is there is kept too (``excluded``): the
pipeline sees from it that a target was flushed under a running migration. Standalone servers
only: a cluster node's INFO counts its own keys, not the cluster's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from cachemigrate.engine.readers.source_offsets import CONTROL_NAME, read_info
from cachemigrate.errors import CacheMigrateError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_keyspace


class KeyCount:
    """The keys of ``endpoint`` in the dbs ``covers`` accepts (None: all), minus ``exclude``."""

    def __init__(
        self, endpoint: Endpoint, covers: Callable[[int], bool] | None = None, *, exclude: bytes | None = None
    ) -> None:
        self.endpoint = endpoint
        self.covers = covers
        self.exclude = exclude  # a key in db 0 that is not counted
        self.value: int | None = None
        self.excluded: bool | None = None  # whether ``exclude`` was there (None: the sample failed)
        self._conn: Connection | None = None

    async def sample(self) -> None:
        self.excluded = None  # known from this sample only: not a value from before
        try:
            conn = self._conn
            if conn is None or conn.is_closed:
                conn = self._conn = await Connection.open(self.endpoint, db=0, name=CONTROL_NAME)
            keyspace = parse_keyspace(await read_info(conn, "keyspace"))
            covers = self.covers
            n = sum(keys for db, keys in keyspace.items() if covers is None or covers(db))
            if self.exclude is not None:
                self.excluded = bool(keyspace.get(0)) and bool(
                    await conn.execute("EXISTS", self.exclude, timeout=10)
                )
                if self.excluded and (covers is None or covers(0)):
                    n -= 1
            self.value = n
        except (CacheMigrateError, OSError, TimeoutError, ValueError):
            if self._conn is not None:
                self._conn.abort()
                self._conn = None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(CacheMigrateError, OSError):
                await conn.close()
