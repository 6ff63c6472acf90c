"""What the sync reader asks the source outside the replication link: INFO sections, and the
source's ``master_repl_offset`` sampled over time (for the lag in seconds and the catch-up end)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from cachemigrate.errors import CacheMigrateError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_info

CONTROL_NAME = "cachemigrate-control"


async def read_info(conn: Connection, section: str) -> dict[str, str]:
    reply = await conn.execute("INFO", section, timeout=10)
    return parse_info(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply))


async def fetch_info(endpoint: Endpoint, section: str) -> dict[str, str]:
    """One INFO section over a short-lived control connection."""
    conn = await Connection.open(endpoint, name=CONTROL_NAME)
    try:
        return await read_info(conn, section)
    finally:
        await conn.close()


class OffsetSampler:
    """``master_repl_offset`` every ``period`` seconds: (monotonic time, offset) pairs."""

    def __init__(self, endpoint: Endpoint, period: float) -> None:
        self.endpoint = endpoint
        self.period = period
        self.samples: deque[tuple[float, int]] = deque(maxlen=3600)

    async def run(self, stopped: Callable[[], bool]) -> None:
        conn: Connection | None = None
        try:
            while not stopped():
                try:
                    if conn is None:
                        conn = await Connection.open(self.endpoint, name=CONTROL_NAME)
                    offset = int((await read_info(conn, "replication")).get("master_repl_offset", "-1"))
                    if offset >= 0:
                        self.samples.append((time.monotonic(), offset))
                except (CacheMigrateError, TimeoutError, ValueError):
                    if conn is not None:
                        conn.abort()
                        conn = None
                await asyncio.sleep(self.period)
        finally:
            if conn is not None:
                with contextlib.suppress(CacheMigrateError, OSError):
                    await conn.close()

    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    def seconds_behind(self, applied: int) -> float:
        """How long ago the source first passed ``applied`` (source offsets), 0 if not seen."""
        for at, offset in self.samples:
            if offset > applied:
                return max(0.0, time.monotonic() - at)
        return 0.0
