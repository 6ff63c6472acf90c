"""The probe against a scripted server: Valkey detection, strict RDB check, refused CONFIG."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cachemigrate.protocol.commands import pack_command
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
