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
