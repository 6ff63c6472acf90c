"""Can we use an endpoint? Connect, log in and ask who it is, within a deadline.

The service checks every endpoint a request names before it stores it (instance registration,
task configuration), with the same connection, TLS and AUTH code the pipelines use: an endpoint
that passes here is one a migration can reach.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from cachemigrate.errors import AuthError, ConnectionLostError, ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import parse_info


@dataclass(frozen=True, slots=True)
class Reached:
    """Who answered: ``vendor`` ("redis" or "valkey") and its version text."""

    vendor: str
    version: str


async def reach(endpoint: Endpoint, *, timeout: float = 3.0) -> Reached:
    """Connect, authenticate and read ``INFO server``, all within ``timeout`` seconds.

    Raises ``AuthError`` when the server refuses the password or ACL user (or wants one and none
    was given), ``ConnectionLostError`` when nothing (or something that is not Redis) answers in
    time, and other ``ServerError`` subclasses for a server that answers with an error (LOADING...).
    """
    ep = dataclasses.replace(endpoint, connect_timeout=min(endpoint.connect_timeout, timeout))
    try:
        return await asyncio.wait_for(_hello(ep), timeout)
    except TimeoutError:
        raise ConnectionLostError(f"{ep.display_url()} did not answer within {timeout:g} s") from None
    except AuthError:
        raise
    except ServerError as exc:
        # Redis 5 and older answer an AUTH to a server without a password with a plain ERR.
        if "AUTH" in str(exc):
            raise AuthError(str(exc)) from None
        raise


async def _hello(endpoint: Endpoint) -> Reached:
    conn = await Connection.open(endpoint, db=0)
    try:
        reply = await conn.execute("INFO", "server")
    finally:
        await conn.close()
    text = bytes(reply).decode("utf-8", "replace") if isinstance(reply, bytes | bytearray) else str(reply)
    info = parse_info(text)
    if "valkey_version" in info or info.get("server_name", "").lower() == "valkey":
        return Reached("valkey", info.get("valkey_version") or info.get("redis_version", ""))
    return Reached("redis", info.get("redis_version", ""))
