"""Replica handshake, RDB transfer and command stream against a scripted fake master."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cachemigrate.errors import ConnectionLostError, ProtocolError
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import (
    EofMarkSplitter,
    ReplicationLink,
    RetryLaterError,
    SyncRefusedError,
)
from cachemigrate.protocol.resp import CommandStream

MARK = b"0123456789abcdef0123456789abcdef01234567"


# ---- EOF mark splitter -------------------------------------------------------------------------


def _split_all(data: bytes, step: int) -> tuple[bytes, bytes]:
    s = EofMarkSplitter(MARK)
    out = bytearray()
    for i in range(0, len(data), step):
        out += s.feed(data[i : i + step])
        if s.done and i + step < len(data):
            s.feed(data[i + step :])
            break
    assert s.done
    return bytes(out), s.remainder


@pytest.mark.parametrize("step", [1, 2, 3, 7, 39, 40, 41, 100, 4096])
def test_eof_mark_split_at_every_boundary(step: int) -> None:
    payload = os.urandom(333) + MARK[:20] + os.urandom(50)  # a partial mark inside the payload
    body, rest = _split_all(payload + MARK + b"*1\r\n$4\r\nPING\r\n", step)
    assert body == payload
    assert rest == b"*1\r\n$4\r\nPING\r\n"


def test_eof_mark_empty_payload_and_no_remainder() -> None:
    for step in (1, 5, 40):
        body, rest = _split_all(MARK, step)
        assert body == b"" and rest == b""


def test_eof_mark_holds_back_at_most_39_bytes() -> None:
    s = EofMarkSplitter(MARK)
    assert s.feed(b"x" * 100) == b"x" * 61
    assert not s.done


def test_eof_mark_must_be_40_bytes() -> None:
    with pytest.raises(ProtocolError):
        EofMarkSplitter(b"short")


# ---- fake master -------------------------------------------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[list[bytes]]], Awaitable[None]]


async def _requests(reader: asyncio.StreamReader, seen: list[list[bytes]], n: int) -> None:
    parser = CommandStream(accelerated=False)
    got = 0
    while got < n:
        parser.feed(await reader.read(4096))
        cmds, _, _ = parser.pop()
        seen.extend(cmds)
        got += len(cmds)


async def _until_closed(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


async def _drip(writer: asyncio.StreamWriter, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await writer.drain()
        await asyncio.sleep(0)


FakeMaster = Callable[[Script], Awaitable[tuple[Endpoint, list[list[bytes]]]]]


@pytest.fixture
async def fake_master() -> AsyncIterator[FakeMaster]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> tuple[Endpoint, list[list[bytes]]]:
        seen: list[list[bytes]] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await script(r, w, seen)
            finally:
                w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Endpoint(port=port, password="pw", connect_timeout=2), seen

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


async def _handshake(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
    await _requests(r, seen, 1)
    w.write(b"-NOAUTH Authentication required.\r\n")
    for _ in range(3):  # AUTH, REPLCONF listening-port, REPLCONF capa
        await _requests(r, seen, 1)
        w.write(b"+OK\r\n")
    await _requests(r, seen, 1)  # PSYNC


PIECES = [
    b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n",
    b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
]
STREAM = b"".join(PIECES)


@pytest.mark.parametrize("diskless", [False, True])
@pytest.mark.parametrize("step", [1, 4096])
async def test_full_sync_split_anywhere(fake_master: FakeMaster, diskless: bool, step: int) -> None:
    rdb = b"REDIS0010" + os.urandom(300) + b"\xff" + os.urandom(8)

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
        await _handshake(r, w, seen)
        head = b"\n\n+FULLRESYNC " + b"a" * 40 + b" 1000\r\n\n\n"
        if diskless:
            body = head + b"$EOF:" + MARK + b"\r\n" + rdb + MARK
        else:
            body = head + b"$%d\r\n" % len(rdb) + rdb
        await _drip(w, body, step)
        await _requests(r, seen, 1)  # the ACK after the RDB
        await _drip(w, STREAM, step)
        await _requests(r, seen, 1)  # the ACK answering GETACK
        await _until_closed(r)

    ep, seen = await fake_master(script)
    link = ReplicationLink(ep, ack_interval=30)
    await link.connect()
    res = await link.psync(None, -1)
    assert res.full and res.replid == "a" * 40 and res.offset == 1000
    got = b"".join([c async for c in link.rdb()])
    assert got == rdb
    assert link.rdb_size == (None if diskless else len(rdb))
    out = []
    async for batch in link.commands():
        out += batch
        if link.offset == 1000 + len(STREAM):
            break
    await link.close()
    names = [argv[0] for argv, _ in out]
    assert names == [b"SELECT", b"SET", b"DEL"]
    select, set_, ping, getack = map(len, PIECES[:4])
    assert out[0][1] == 1000 + select
    assert out[1][1] == 1000 + select + set_
    assert out[2][1] == 1000 + len(STREAM)
    assert seen[0] == [b"PING"]
    assert seen[1] == [b"AUTH", b"pw"]
    assert seen[2][:2] == [b"REPLCONF", b"listening-port"]
    assert seen[3] == [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]
    assert seen[4] == [b"PSYNC", b"?", b"-1"]
    assert seen[5] == [b"REPLCONF", b"ACK", b"1000"]
    # GETACK is answered at once with the offset just after it.
    assert seen[6] == [b"REPLCONF", b"ACK", str(1000 + select + set_ + ping + getack).encode()]


async def test_continue_with_new_replid_and_periodic_acks(fake_master: FakeMaster) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
        await _handshake(r, w, seen)
        w.write(b"+CONTINUE " + b"b" * 40 + b"\r\n")
        await _requests(r, seen, 2)  # two periodic ACKs
        w.write(b"*1\r\n$4\r\nPING\r\n")
        await _until_closed(r)

    ep, seen = await fake_master(script)
    link = ReplicationLink(ep, ack_interval=0.05)
    await link.connect()
    res = await link.psync("a" * 40, 501)
    assert not res.full and res.replid == "b" * 40 and res.offset == 500
    async for batch in link.commands():
        assert batch == []  # the PING is counted, not forwarded
        break
    assert link.offset == 514
    await link.close()
    assert seen[4] == [b"PSYNC", b"a" * 40, b"501"]
    assert seen[5] == [b"REPLCONF", b"ACK", b"500"]


@pytest.mark.parametrize(
    ("reply", "exc"),
    [
        (b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n", RetryLaterError),
        (b"-LOADING Redis is loading the dataset in memory\r\n", RetryLaterError),
        (b"-ERR unknown command 'PSYNC'\r\n", SyncRefusedError),
        (b"-NOPERM this user has no permissions to run the 'psync' command\r\n", SyncRefusedError),
    ],
)
async def test_psync_errors(fake_master: FakeMaster, reply: bytes, exc: type[Exception]) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
        await _handshake(r, w, seen)
        w.write(reply)
        await _until_closed(r)

    ep, _ = await fake_master(script)
    link = ReplicationLink(ep)
    await link.connect()
    with pytest.raises(exc):
        await link.psync(None, -1)
    await link.close()


async def test_silent_link_times_out(fake_master: FakeMaster) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
        await _handshake(r, w, seen)
        w.write(b"+CONTINUE\r\n")
        await _until_closed(r)

    ep, _ = await fake_master(script)
    link = ReplicationLink(ep, repl_timeout=0.3)
    await link.connect()
    await link.psync("a" * 40, 1)
    with pytest.raises(ConnectionLostError, match="no data"):
        async for _ in link.commands():
            pass
    await link.close()


async def test_closed_link_is_lost(fake_master: FakeMaster) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, seen: list[list[bytes]]) -> None:
        await _handshake(r, w, seen)
        w.write(b"+FULLRESYNC " + b"a" * 40 + b" 0\r\n$100\r\nREDIS")

    ep, _ = await fake_master(script)
    link = ReplicationLink(ep)
    await link.connect()
    await link.psync(None, -1)
    with pytest.raises(ConnectionLostError):
        async for _ in link.rdb():
            pass
    await link.close()
