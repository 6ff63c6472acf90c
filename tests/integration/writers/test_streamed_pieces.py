"""A RESTORE streamed in pieces (engine/streamed.py) through the StandaloneWriter into a real
redis-server: the payload's CRC chained over the pieces is the one Redis checks, the command is one
reply whatever the write() calls cut it into, the budget (far below the command) admits it alone
and does not deadlock, offsets and key counts move only at its last piece, a db change puts the
SELECT before its first piece, and a stop inside it leaves everything before it applied."""

from __future__ import annotations

import random

import pytest

from cachemigrate.engine.entry import Command, Entry, Piece
from cachemigrate.engine.streamed import PIECE_BYTES, StreamedRestore
from cachemigrate.engine.writers import StandaloneWriter, WriterOptions
from cachemigrate.errors import MigrationError
from cachemigrate.protocol.endpoint import Endpoint
from support.servers import RedisServer


def _streamed(source: RedisServer, key: bytes, *, db: int = 0, ttl: bool = False,
              offset: int = 100) -> tuple[list[Piece], bytes]:
    """The pieces of a RESTORE of ``key`` as the source DUMPs it (its value bytes streamed in
    uneven parts); and the DUMP."""
    c = source.client()
    payload = c.dump(key)
    assert payload is not None
    st = StreamedRestore(key=key, source_key=key, db=db, type_byte=payload[0],
                         version=int.from_bytes(payload[-10:-8], "little"),
                         expire_ms=4_000_000_000_000 if ttl else -1, idle=None, freq=None, replace=True,
                         start_offset=offset, tag="hash")
    value = payload[1:-10]
    rng = random.Random(len(value))
    i = 0
    while i < len(value):
        n = rng.randint(1, 300_000)
        st.add(value[i : i + n])
        i += n
    return list(st.pieces(offset + 1000)), payload


def _big_hash(source: RedisServer, key: bytes, n: int) -> None:
    source.client().hset(key, mapping={b"f%07d" % i: b"v%d" % (i % 97) for i in range(n)})


@pytest.mark.parametrize("cut", [1, 2, 1000], ids=["each-piece-alone", "two-at-a-time", "all-at-once"])
async def test_a_streamed_restore_lands_whole(source_redis: RedisServer, target_redis: RedisServer,
                                              cut: int) -> None:
    _big_hash(source_redis, b"big", 300_000)  # ~5 MB: several pieces
    pieces, _ = _streamed(source_redis, b"big", db=3, ttl=True)
    assert len(pieces) >= 3 and all(p.size > 16 << 10 for p in pieces)
    assert pieces[0].charge == sum(p.size for p in pieces) and not any(p.charge for p in pieces[1:])
    before = [Command([b"SET", b"k%d" % i, b"v"], 0, b"k%d" % i, 0, 10 + i, "string") for i in range(50)]
    after = [Command([b"SET", b"after", b"x"], 3, b"after", 0, 5000, "string")]
    entries: list[Entry] = [*before, *pieces, *after]
    w = StandaloneWriter(Endpoint.from_url(target_redis.url), WriterOptions(max_bytes_in_flight=256 << 10))
    await w.start()
    try:
        offsets = []
        for i in range(0, len(entries), cut):
            await w.write(entries[i : i + cut])
            offsets.append(w.applied_offset)
        await w.flush()
    finally:
        await w.close()
    assert w.stats.keys_written == 52 and w.stats.commands_written == 52, w.failures
    assert w.applied_offset == 5000
    t3 = target_redis.client(db=3)
    assert t3.hgetall(b"big") == source_redis.client().hgetall(b"big")  # and Redis checked the CRC
    assert t3.pttl(b"big") > 0 and t3.get(b"after") == b"x"
    assert target_redis.client().get(b"k49") == b"v"
    if cut == 1:  # the applied offset never passes the key's start before its last piece is in
        assert all(o <= 100 for o in offsets[: len(before) + len(pieces) - 1]), offsets


async def test_a_stop_inside_a_streamed_restore(source_redis: RedisServer, target_redis: RedisServer) -> None:
    _big_hash(source_redis, b"big", 200_000)
    pieces, _ = _streamed(source_redis, b"big")
    w = StandaloneWriter(Endpoint.from_url(target_redis.url), WriterOptions())
    await w.start()
    try:
        # it ends where the big key starts (offset 100), as the parser's offsets go
        await w.write([Command([b"SET", b"first", b"1"], 0, b"first", 0, 100, "string")])
        await w.write(pieces[:-1])
        with pytest.raises(MigrationError):  # nothing else may go inside the command's bytes
            await w.write([Command([b"SET", b"inside", b"1"], 0, b"inside", 0, 2000, "string")])
        await w.flush()  # returns: the open command will never be answered
    finally:
        await w.close()
    assert w.applied_offset == 100 and w.stats.keys_written == 1
    c = target_redis.client()
    assert c.get(b"first") == b"1" and not c.exists(b"big") and not c.exists(b"inside")


def test_piece_sizes() -> None:
    """Every piece of a multi-piece command is above LARGE_ARG (the writer's fast pass relies on
    it); the last takes the remainder."""
    st = StreamedRestore(key=b"k", source_key=b"k", db=0, type_byte=4, version=9, expire_ms=-1, idle=None,
                         freq=None, replace=False, start_offset=0, tag="hash")
    st.add(b"x" * (5 * PIECE_BYTES + 17))
    sizes = [p.size for p in st.pieces(1)]
    assert len(sizes) == 5 and min(sizes) >= PIECE_BYTES and sizes[-1] > PIECE_BYTES
