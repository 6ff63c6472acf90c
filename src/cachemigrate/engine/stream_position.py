"""Where a server's replication stream can be continued from, for the cutover
(engine/cutover.py): the position read inside a transaction, whether a PSYNC there continues,
and the backlog that makes it possible.

A master keeps a replication backlog (what PSYNC continues from) only once a replica has attached;
creating it gives the master a new replid. So the new server, which only ever had our writer as a
client, could not continue a PSYNC at all. ``ensure_backlog`` attaches a replica (PSYNC ? -1) to it
once before the pause when it has no backlog, and drops it at once: the backlog stays (``repl-
backlog-ttl``, 1 h by default, with no replica) and counts every later write. Cost: it may start a
snapshot for that replica (a fork; disk-based, or nothing where diskless sync waits for more
replicas). The backlog must hold what it receives between the position read (cutover step 3) and
the reverse sync's PSYNC (milliseconds; ``repl-backlog-size`` is 1 MB by default).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cachemigrate.engine.readers.source_offsets import read_info
from cachemigrate.errors import CacheMigrateError, CutoverError, ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_info
from cachemigrate.protocol.replication import ReplicationLink
from cachemigrate.protocol.resp import ErrorReply

CONTROL = "cachemigrate-cutover"  # the client name of the cutover's own connections
POLL = 0.02  # seconds between looks at INFO


async def ensure_backlog(endpoint: Endpoint, timeout: float = 30.0) -> bool:
    """Make ``endpoint`` keep a replication backlog (see the module docstring); True when it had
    none and one was made."""
    conn = await Connection.open(endpoint, db=0, name=CONTROL)
    try:
        if (await read_info(conn, "replication")).get("repl_backlog_active") == "1":
            return False
        link = ReplicationLink(endpoint)
        await link.connect()
        # The master makes the backlog when it takes the PSYNC; its reply may wait (diskless sync
        # waits for more replicas), so INFO says when it is there.
        psync = asyncio.ensure_future(link.psync(None, -1))
        try:
            async with asyncio.timeout(timeout):
                while (await read_info(conn, "replication")).get("repl_backlog_active") != "1":
                    if psync.done():
                        psync.result()  # a refusal (NOPERM...) raises here
                    await asyncio.sleep(POLL)
        except TimeoutError:
            raise CutoverError(f"{endpoint.address} made no replication backlog in {timeout:g} s") from None
        finally:
            psync.cancel()
            with contextlib.suppress(asyncio.CancelledError, CacheMigrateError, OSError):
                await psync
            await link.close()
        return True
    finally:
        await conn.close()


async def transaction(conn: Connection, *commands: list[Any]) -> list[Any]:
    """``MULTI / commands / EXEC`` in one write; the EXEC array (ServerError on any error)."""
    replies = await conn.pipeline([["MULTI"], *commands, ["EXEC"]])
    for reply in replies:
        if isinstance(reply, ErrorReply):
            raise ServerError(f"{conn.endpoint.address}: {reply.message}")
    result = replies[-1]
    if not isinstance(result, list):
        raise ServerError(f"{conn.endpoint.address}: the transaction was not executed ({result!r})")
    for reply in result:
        if isinstance(reply, ErrorReply):
            raise ServerError(f"{conn.endpoint.address}: {reply.message}")
    return result


def position(reply: object, endpoint: Endpoint) -> tuple[str, int]:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    info = parse_info(text)
    try:
        return info["master_replid"], int(info["master_repl_offset"])
    except (KeyError, ValueError):
        raise CutoverError(f"{endpoint.address} does not report its replication offset") from None


async def continues(endpoint: Endpoint, replid: str, offset: int) -> bool:
    """Whether ``endpoint`` answers +CONTINUE to PSYNC ``replid`` ``offset + 1`` (link dropped)."""
    link = ReplicationLink(endpoint)
    try:
        await link.connect()
        return not (await link.psync(replid, offset + 1)).full
    finally:
        await link.close()
