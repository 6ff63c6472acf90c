"""Connection (AUTH, errors, TLS, loss) and the target probe against real servers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from cachemigrate.errors import AuthError, ConfigError, ConnectionLostError, ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import probe_target
from cachemigrate.protocol.replication import ReplicationLink
from cachemigrate.protocol.resp import ErrorReply
from support.require import require
from support.servers import RedisServer, free_port, require_redis6
from support.tls import self_signed


async def test_execute_and_mapped_errors(target_redis: RedisServer) -> None:
    conn = await Connection.open(Endpoint.from_url(target_redis.url), db=4)
    assert conn.db == 4
    assert await conn.execute("SET", "k", 1) == b"OK"
    assert await conn.execute("GET", "k") == b"1"
    assert target_redis.client(db=4).get("k") == b"1"
    await conn.execute("RPUSH", "l", "x")
    with pytest.raises(ServerError) as info:
        await conn.execute("GET", "l")
    assert info.value.reply.startswith("WRONGTYPE") and info.value.command == b"GET"
    results = await asyncio.gather(*(conn.execute("INCR", "n") for _ in range(50)))
    assert results == list(range(1, 51))  # replies matched in order
    replies = await conn.pipeline([("INCR", "n"), ("GET", "l"), ("PING",)])
    assert replies[0] == 51 and isinstance(replies[1], ErrorReply) and replies[2] == b"PONG"
    await conn.close()
    with pytest.raises(ConnectionLostError):
        await conn.execute("PING")


async def test_password_never_shown(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("pw", password="top-secret")
    ep = Endpoint.from_url(f"redis://:wrong-secret@127.0.0.1:{server.port}")
    with pytest.raises(AuthError) as info:
        await Connection.open(ep)
    assert "wrong-secret" not in str(info.value) and "***" in str(info.value)
    conn = await Connection.open(Endpoint.from_url(server.url))
    assert "top-secret" not in repr(conn)
    await conn.close()
    with pytest.raises(ConnectionLostError, match=r"^cannot connect to redis://127\.0\.0\.1:"):
        await Connection.open(Endpoint(port=free_port(), connect_timeout=2))


async def test_server_shutdown_is_connection_lost(target_redis: RedisServer) -> None:
    conn = await Connection.open(Endpoint.from_url(target_redis.url))
    target_redis.kill()
    with pytest.raises(ConnectionLostError):
        for _ in range(100):
            await conn.execute("PING")
            await asyncio.sleep(0.01)


async def test_tls_insecure(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    tls_port = free_port()
    try:
        server = redis_factory("tls", args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                            "--tls-key-file", str(key), "--tls-auth-clients", "no"])
    except RuntimeError as exc:  # a redis-server built without TLS refuses the directive
        require("Bad directive" not in str(exc), f"a redis-server built with TLS (Debian's is): {exc}")
        raise
    conn = await Connection.open(Endpoint.from_url(f"rediss://127.0.0.1:{tls_port}/0?insecure=1"))
    assert await conn.execute("SET", "over-tls", "yes") == b"OK"
    await conn.close()
    assert server.client().get("over-tls") == b"yes"
    # The replication link dials the same way: a full sync over TLS.
    link = ReplicationLink(Endpoint.from_url(f"rediss://127.0.0.1:{tls_port}?insecure=1"))
    await link.connect()
    assert (await link.psync(None, -1)).full
    rdb = b"".join([chunk async for chunk in link.rdb()])
    assert rdb.startswith(b"REDIS") and b"over-tls" in rdb
    await link.close()
    for stack in (Connection.open, lambda ep: ReplicationLink(ep).connect()):
        # Verification on: a self-signed certificate is refused, in the same words by both.
        refused = r"^cannot connect to rediss://127\.0\.0\.1:\d+: .*CERTIFICATE_VERIFY_FAILED"
        with pytest.raises(ConnectionLostError, match=refused):
            await stack(Endpoint.from_url(f"rediss://127.0.0.1:{tls_port}"))


async def test_tls_verified_with_a_ca_file_and_a_client_certificate(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path / "tls")  # its own CA, for the server and the client
    tls_port = free_port()
    try:
        redis_factory("mtls", args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                    "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                                    "--tls-auth-clients", "yes"])
    except RuntimeError as exc:  # pragma: no cover - a redis-server built without TLS
        pytest.skip(f"redis-server without TLS: {exc}")
    url = f"rediss://127.0.0.1:{tls_port}?ssl_ca_certs={cert}&ssl_certfile={cert}&ssl_keyfile={key}"
    ep = Endpoint.from_url(url)
    assert (ep.tls_ca_file, ep.tls_cert_file, ep.tls_key_file) == (str(cert), str(cert), str(key))
    conn = await Connection.open(ep)  # verification on: the CA file vouches for the server
    assert await conn.execute("PING") == b"PONG"
    await conn.close()
    link = ReplicationLink(ep)
    await link.connect()
    assert (await link.psync(None, -1)).full
    await link.close()
    with pytest.raises(ConnectionLostError):  # no client certificate: the server drops us
        anonymous = await Connection.open(dataclasses.replace(ep, tls_cert_file=None, tls_key_file=None))
        await anonymous.execute("PING")
    with pytest.raises(ConfigError, match=r"no-such\.pem"):
        await Connection.open(dataclasses.replace(ep, tls_ca_file=str(tmp_path / "no-such.pem")))


async def test_probe_redis7(target_redis: RedisServer) -> None:
    target_redis.client(db=3).set("a", 1)
    info = await probe_target(Endpoint.from_url(target_redis.url))
    assert info.vendor == "redis" and info.version[:2] == (7, 0) and info.rdb_version == 10
    assert not info.cluster and info.databases == 16 and info.keyspace == {3: 1}
    assert info.accepts_rdb(10) and not info.accepts_rdb(11)
    assert "redis 7.0" in info.describe()


async def test_probe_redis6(redis_factory: Callable[..., RedisServer]) -> None:
    binary = require_redis6()
    server = redis_factory("r6", binary=binary, args=["--databases", "4"])
    info = await probe_target(Endpoint.from_url(server.url))
    assert info.version == (6, 0, 9) and info.rdb_version == 9 and info.databases == 4


async def test_probe_config_refused(target_redis: RedisServer) -> None:
    target_redis.client().execute_command("ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "+@all", "-config")
    info = await probe_target(Endpoint.from_url(f"redis://noconfig:pw@127.0.0.1:{target_redis.port}"))
    assert info.databases is None and info.rdb_version == 10
