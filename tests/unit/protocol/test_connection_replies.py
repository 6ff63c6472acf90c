"""Reply routing in Connection: the all-+OK fast path and the parser agree, in order."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.resp import HAS_HIREDIS, NEED_DATA, ErrorReply, ReplyReader


@pytest.mark.parametrize("accelerated", [False, *([True] if HAS_HIREDIS else [])])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ok_counting_and_parsing_interleave_in_order(accelerated: bool, seed: int) -> None:
    conn = Connection(Endpoint(), accelerated=accelerated)
    seen: list[Any] = []

    def consume(reader: ReplyReader) -> None:
        while (r := reader.gets()) is not NEED_DATA:
            seen.append(r)

    def count(n: int) -> None:
        seen.extend([b"OK"] * n)

    conn.set_consumer(consume, None, count)
    ok = b"+OK\r\n"
    wire = ok * 1000 + b":5\r\n" + ok * 1000 + b"-ERR x\r\n" + ok * 999 + b"+QUEUED\r\n"
    rng = random.Random(seed)
    pos = 0
    while pos < len(wire):
        step = rng.randint(1, 700)
        conn._received(wire[pos : pos + step])
        pos += step
    assert len(seen) == 3002
    assert seen[1000] == 5 and isinstance(seen[2001], ErrorReply) and seen[-1] == b"QUEUED"
    assert all(r == b"OK" for i, r in enumerate(seen) if i not in (1000, 2001, 3001))


class _Transport:
    """Enough of an asyncio transport for send(): keeps what was written."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


@pytest.mark.parametrize("accelerated", [False, *([True] if HAS_HIREDIS else [])])
async def test_pipelines_wait_on_one_future_and_interleave_with_execute(accelerated: bool) -> None:
    import asyncio

    from cachemigrate.errors import ConnectionLostError
    from cachemigrate.protocol.commands import key_commands_packer

    conn = Connection(Endpoint(), accelerated=accelerated)
    transport = _Transport()
    conn._transport = transport  # type: ignore[assignment]
    first = asyncio.ensure_future(conn.execute("PING"))
    pack = key_commands_packer((b"TYPE", b"PTTL"))
    batch = asyncio.ensure_future(conn.pipeline_packed(pack([b"a", b"bb"]), 4))
    listed = asyncio.ensure_future(conn.pipeline([("GET", "x"), ("GET", "y")]))
    last = asyncio.ensure_future(conn.execute("PING"))
    await asyncio.sleep(0)  # every request written
    assert bytes(transport.sent).count(b"\r\nTYPE\r\n") == 2 and b"$2\r\nbb\r\n" in transport.sent
    wire = b"+PONG\r\n+string\r\n:-1\r\n+none\r\n:-2\r\n$1\r\n1\r\n-ERR no\r\n+PONG\r\n"
    for i in range(len(wire)):  # one byte at a time: every reply split everywhere
        conn._received(wire[i : i + 1])
    assert await first == b"PONG"
    assert await batch == [b"string", -1, b"none", -2]
    got = await listed
    assert got[0] == b"1" and isinstance(got[1], ErrorReply)
    assert await last == b"PONG"
    assert await conn.pipeline_packed(b"", 0) == []

    pending = asyncio.ensure_future(conn.pipeline([("PING",), ("PING",)]))
    await asyncio.sleep(0)
    conn._received(b"+PONG\r\n")  # one of two replies, then the connection goes
    conn._lost(None)
    with pytest.raises(ConnectionLostError):
        await pending
