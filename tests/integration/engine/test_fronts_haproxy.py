"""The HAProxy front driver against a real haproxy and real redis-servers: a client connected
through the front reaches A; after switch_to(B) new connections reach B and the session still
open to A is closed."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from cachemigrate.engine.fronts import HAProxyFront, open_front
from cachemigrate.errors import ConfigError, FrontError
from cachemigrate.protocol.endpoint import Endpoint
from support.haproxy import HAProxy, start_haproxy
from support.poll import until
from support.servers import RedisServer, free_port


@pytest.fixture
def pair(redis_factory: Callable[..., RedisServer]) -> tuple[RedisServer, RedisServer]:
    return redis_factory("a"), redis_factory("b")


@pytest.fixture
def hx(tmp_path: Path, pair: tuple[RedisServer, RedisServer]) -> Iterator[HAProxy]:
    a, _ = pair
    proxy = start_haproxy(tmp_path / "haproxy", {"source": ("127.0.0.1", a.port)})
    yield proxy
    proxy.stop()


def served_by(port: int) -> int:
    """The port of the redis-server a fresh connection to ``port`` reaches."""
    c = redis.Redis(port=port, socket_timeout=5)
    try:
        return int(c.config_get("port")["port"])
    finally:
        c.close()


def ping(sock: socket.socket) -> bytes:
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    return sock.recv(64)


async def test_switch_moves_new_connections_and_closes_old_sessions(
    hx: HAProxy, pair: tuple[RedisServer, RedisServer]
) -> None:
    a, b = pair
    front = open_front(hx.url("source"))
    assert (await front.backend()).address == f"127.0.0.1:{a.port}"
    assert (await front.health()).up
    assert served_by(hx.port("source")) == a.port

    old = socket.create_connection(("127.0.0.1", hx.port("source")), timeout=10)
    try:
        assert ping(old) == b"+PONG\r\n"
        await front.switch_to(Endpoint(port=b.port))
        assert (await front.backend()).address == f"127.0.0.1:{b.port}"
        assert served_by(hx.port("source")) == b.port
        # The session opened before the switch was closed by HAProxy (EOF or reset).
        try:
            old.sendall(b"*1\r\n$4\r\nPING\r\n")
            closed = old.recv(64) == b""
        except OSError:
            closed = True
        assert closed
    finally:
        old.close()

    # And back, by host name (HAProxy takes IPs: the driver resolves it).
    await front.switch_to(Endpoint(host="localhost", port=a.port))
    assert served_by(hx.port("source")) == a.port


async def test_health_follows_the_backend(hx: HAProxy, pair: tuple[RedisServer, RedisServer]) -> None:
    a, _ = pair
    front = open_front(hx.url("source"))
    a.stop()

    async def down() -> bool:
        return not (await front.health()).up

    await until(down, what="haproxy's check to mark the stopped server down")
    assert "stopped" in (await front.health()).detail


async def test_errors_name_the_front(hx: HAProxy, tmp_path: Path) -> None:
    wrong = open_front(hx.url("source").replace("/main", "/nope"))
    with pytest.raises(FrontError, match="has no server nope"):
        await wrong.backend()
    with pytest.raises(FrontError, match="Can't find backend"):
        await open_front(hx.url("source").replace("back_source", "back_x")).backend()
    gone = HAProxyFront.from_url(f"haproxy://{tmp_path / 'no.sock'}?server=b/s")
    with pytest.raises(FrontError, match="cannot reach the Runtime API"):
        await gone.health()
    tcp = HAProxyFront.from_url(f"haproxy://127.0.0.1:{free_port()}?server=b/s&timeout=2")
    with pytest.raises(FrontError, match="cannot reach"):
        await tcp.backend()


@pytest.mark.parametrize("url", [
    "http://x?server=a/b", "haproxy:///tmp/s.sock", "haproxy:///tmp/s.sock?server=nobackend",
    "haproxy://host:notaport?server=a/b", "haproxy:///s.sock?server=a/b&timeout=soon",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_front(url)
