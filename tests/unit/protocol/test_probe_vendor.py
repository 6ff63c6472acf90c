"""The probe against a scripted server: Valkey detection, strict RDB check, refused CONFIG."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cachemigrate.errors import ProtocolError
from cachemigrate.protocol.cluster import fetch_topology
from cachemigrate.protocol.commands import pack_command
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo, probe_target
from cachemigrate.protocol.resp import CommandStream

Replies = dict[tuple[bytes, ...], bytes]


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _info(server: str, cluster: str = "cluster_enabled:0", keyspace: str = "") -> Replies:
    return {
        (b"INFO", b"server"): _bulk(f"# Server\r\n{server}\r\n"),
        (b"INFO", b"cluster"): _bulk(f"# Cluster\r\n{cluster}\r\n"),
        (b"INFO", b"keyspace"): _bulk(f"# Keyspace\r\n{keyspace}\r\n"),
    }


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Replies], Awaitable[Endpoint]]]:
    servers: list[asyncio.Server] = []

    async def start(replies: Replies) -> Endpoint:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            stream = CommandStream()
            while data := await r.read(4096):
                stream.feed(data)
                for argv in stream.pop()[0]:
                    key = tuple(a.upper() if i == 0 else a for i, a in enumerate(argv))
                    w.write(replies.get(key, b"-ERR unknown command\r\n"))
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return Endpoint(port=server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


async def _probe(scripted: Callable[[Replies], Awaitable[Endpoint]], replies: Replies) -> TargetInfo:
    return await probe_target(await scripted(replies))


async def test_valkey9_strict(scripted: Callable[[Replies], Awaitable[Endpoint]]) -> None:
    replies = _info("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.0.0",
                    keyspace="db0:keys=5,expires=0,avg_ttl=0")
    replies[(b"CONFIG", b"GET", b"databases")] = pack_command([b"databases", b"16"])
    replies[(b"CONFIG", b"GET", b"rdb-version-check")] = pack_command([b"rdb-version-check", b"strict"])
    info = await _probe(scripted, replies)
    assert info.vendor == "valkey" and info.version == (9, 0, 0) and info.rdb_version == 80
    assert info.rdb_strict and not info.accepts_rdb(12) and info.accepts_rdb(11) and info.accepts_rdb(80)
    assert info.databases == 16 and info.total_keys == 5
    assert "strict" in info.describe()


async def test_valkey8_and_refused_config(scripted: Callable[[Replies], Awaitable[Endpoint]]) -> None:
    info = await _probe(scripted, _info("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.1.1"))
    assert info.vendor == "valkey" and info.rdb_version == 11 and info.databases is None
    assert not info.rdb_strict


async def test_redis_cluster_and_74(scripted: Callable[[Replies], Awaitable[Endpoint]]) -> None:
    info = await _probe(scripted, _info("redis_version:7.4.1\r\nredis_mode:cluster", "cluster_enabled:1"))
    assert info.vendor == "redis" and info.rdb_version == 12 and info.cluster and info.databases == 1


async def test_numbers_from_a_server_are_ascii_digits_only(
    scripted: Callable[[Replies], Awaitable[Endpoint]],
) -> None:
    # "\u00b2" passes str.isdigit() and int() refuses it; "\u0665" (Arabic-Indic 5) passes both,
    # read as 5. A server the service reaches for a caller is the caller's: neither may crash the
    # probe, nor count as a number.
    keyspace = "db0:keys=\u0665,expires=0\r\ndb\u0661:keys=3,expires=0\r\ndb2:keys=4"
    replies = _info("redis_version:7.\u00b2", keyspace=keyspace)
    replies[(b"CONFIG", b"GET", b"databases")] = pack_command([b"databases", "\u0661\u0666".encode()])
    info = await _probe(scripted, replies)
    assert info.version == (7, 0) and info.databases is None and info.total_keys == 4


GOOD_NODE = "abc 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383"


@pytest.mark.parametrize(
    "nodes",
    [
        GOOD_NODE.replace(":6379@", ":\u0666\u0663\u0667\u0669@"),
        GOOD_NODE.replace("0-16383", "0-1638\u00b3"),
        GOOD_NODE.replace("0-16383", "0-16384"),
        GOOD_NODE.replace(":6379@", ":0@"),
    ],
)
async def test_a_topology_with_odd_numbers_is_a_protocol_error(
    scripted: Callable[[Replies], Awaitable[Endpoint]], nodes: str
) -> None:
    for text, ok in ((nodes, False), (GOOD_NODE, True)):
        conn = await Connection.open(await scripted({(b"CLUSTER", b"NODES"): _bulk(text + "\n")}))
        try:
            if ok:
                assert (await fetch_topology(conn)).covered
            else:
                with pytest.raises(ProtocolError):
                    await fetch_topology(conn)
        finally:
            conn.abort()
