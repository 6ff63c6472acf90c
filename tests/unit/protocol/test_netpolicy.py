"""The network policy: which addresses it allows, and the dialer applying it before any packet.

Listening sockets on loopback addresses (all of 127.0.0.0/8 is local on Linux) stand for servers
the policy must keep the service away from: a refused dial leaves nothing in their accept queue,
and the same dial allowed does, so each "no connection" below is one that could have happened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachemigrate.errors import AddressNotAllowedError, ConfigError, ConnectionLostError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.netpolicy import UNREACHABLE, NetworkPolicy
from cachemigrate.protocol.replication import ReplicationLink

ONLY_1 = NetworkPolicy.of(["127.0.0.1/32"])
ONLY_2 = NetworkPolicy.of(["127.0.0.2/32"])


def test_allows_addresses_inside_its_networks_only() -> None:
    policy = NetworkPolicy.of(["10.0.0.0/8", "fd00::/8", "192.168.1.7/32"])
    assert [policy.allows(a) for a in ("10.1.2.3", "192.168.1.7", "fd12::1")] == [True, True, True]
    assert [policy.allows(a) for a in ("11.0.0.1", "192.168.1.8", "fe80::1", "::1")] == [False] * 4
    # An IPv4-mapped IPv6 address reaches the IPv4 address: it is checked as that.
    assert policy.allows("::ffff:10.0.0.1") and not policy.allows("::ffff:11.0.0.1")
    assert not NetworkPolicy.of(["::/0"]).allows("::ffff:10.0.0.1")
    # The unspecified addresses reach this host: never allowed, whatever the networks say.
    assert not NetworkPolicy.of(["0.0.0.0/0", "::/0"]).allows("0.0.0.0")
    assert not NetworkPolicy.of(["0.0.0.0/0", "::/0"]).allows("::")
    assert not policy.allows("cache.example") and not NetworkPolicy().allows("10.0.0.1")
    assert policy.refused(["10.0.0.1", "11.0.0.1", "::ffff:11.0.0.2"]) == ["11.0.0.1", "::ffff:11.0.0.2"]


def test_networks_are_cidrs_and_mapped_ones_read_as_ipv4() -> None:
    assert NetworkPolicy.of(["::ffff:10.0.0.0/104"]).networks == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert NetworkPolicy.of([" 10.0.0.5 ", "10.0.0.5/32"]).networks == (ipaddress.IPv4Network("10.0.0.5/32"),)
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "cache.example", "", "10.0.0.0/٨"):
        with pytest.raises(ConfigError, match="CIDR"):
            NetworkPolicy.of([bad])


def test_covers_only_narrower_networks() -> None:
    service = NetworkPolicy.of(["10.0.0.0/8", "fd00::/8"])
    assert service.covers(NetworkPolicy.of(["10.1.0.0/16", "fd00:1::/32", "10.0.0.0/8"]))
    assert service.covers(NetworkPolicy())
    assert not service.covers(NetworkPolicy.of(["10.0.0.0/7"]))
    assert not service.covers(NetworkPolicy.of(["10.1.0.0/16", "192.168.0.0/16"]))
    assert not service.covers(NetworkPolicy.of(["::/0"]))


@pytest.fixture
def listen() -> Iterator[Any]:
    """``listen(host, port=0)``: a listening socket that never accepts by itself; ``.pending()``
    says whether a connection reached it (taken from its accept queue)."""
    opened: list[socket.socket] = []

    class Listener:
        def __init__(self, host: str, port: int = 0) -> None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(8)
            self.sock.setblocking(False)
            self.port = int(self.sock.getsockname()[1])
            opened.append(self.sock)

        def pending(self) -> int:
            n = 0
            while True:
                try:
                    conn, _ = self.sock.accept()
                except BlockingIOError:
                    return n
                conn.close()
                n += 1

    yield Listener
    for s in opened:
        s.close()


async def test_a_disallowed_address_is_refused_before_any_packet(listen: Any) -> None:
    server = listen("127.0.0.2")
    ep = Endpoint(host="127.0.0.2", port=server.port, password="pw", network=ONLY_1, connect_timeout=2)
    with pytest.raises(AddressNotAllowedError) as by_conn:
        await Connection.open(ep)
    with pytest.raises(AddressNotAllowedError) as by_link:
        await ReplicationLink(ep).connect()
    assert server.pending() == 0
    for info in (by_conn, by_link):
        assert str(info.value) == f"cannot connect to redis://:***@127.0.0.2:{server.port}: {UNREACHABLE}"
    # The same dial, allowed, reaches it (so the 0 above is a connection that was not made).
    conn = await Connection.open(Endpoint(host="127.0.0.2", port=server.port, network=ONLY_2))
    conn.abort()
    assert server.pending() == 1


async def test_an_ipv4_mapped_address_is_the_ipv4_one(listen: Any) -> None:
    server = listen("127.0.0.2")
    mapped = Endpoint(host="::ffff:127.0.0.2", port=server.port, network=NetworkPolicy.of(["::/0"]))
    with pytest.raises(AddressNotAllowedError):
        await Connection.open(mapped)
    assert server.pending() == 0
    conn = await Connection.open(Endpoint(host="::ffff:127.0.0.2", port=server.port, network=ONLY_2))
    conn.abort()
    assert server.pending() == 1


async def test_a_host_name_is_checked_by_what_it_resolves_to(listen: Any) -> None:
    server = listen("127.0.0.1")
    with pytest.raises(AddressNotAllowedError):
        await Connection.open(Endpoint(host="localhost", port=server.port, network=ONLY_2))
    assert server.pending() == 0
    loopback = NetworkPolicy.of(["127.0.0.0/8", "::1/128"])
    conn = await Connection.open(Endpoint(host="localhost", port=server.port, network=loopback))
    conn.abort()
    assert server.pending() == 1


def _fake_resolver(answers: list[list[str]], calls: list[str]) -> Any:
    """A loop.getaddrinfo answering the n-th lookup with ``answers[n]`` (the last one after)."""

    async def getaddrinfo(host: str, port: int, **_kw: Any) -> list[Any]:
        calls.append(host)
        ips = answers[min(len(calls), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port)) for ip in ips]

    return getaddrinfo


async def test_a_name_is_resolved_once_and_the_checked_address_connected(
    listen: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = listen("127.0.0.2")
    rebound = listen("127.0.0.3", checked.port)
    calls: list[str] = []
    # A resolver that changes its answer after the first lookup (DNS rebinding).
    resolver = _fake_resolver([["127.0.0.2"], ["127.0.0.3"]], calls)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    conn = await Connection.open(Endpoint(host="cache.example", port=checked.port, network=ONLY_2))
    conn.abort()
    assert calls == ["cache.example"]
    assert (checked.pending(), rebound.pending()) == (1, 0)


async def test_one_disallowed_address_refuses_the_name(listen: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = listen("127.0.0.2")
    calls: list[str] = []
    monkeypatch.setattr(
        asyncio.get_running_loop(), "getaddrinfo", _fake_resolver([["127.0.0.2", "10.255.0.1"]], calls)
    )
    with pytest.raises(AddressNotAllowedError):
        await Connection.open(Endpoint(host="cache.example", port=server.port, network=ONLY_2))
    assert server.pending() == 0


def _certificate(directory: Path) -> Path:
    """A self-signed certificate (and key, in the same file) for the name ``localhost`` only."""
    pem = directory / "localhost.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(pem), "-out", str(directory / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    pem.write_text(pem.read_text() + (directory / "cert.pem").read_text())
    return pem


async def test_tls_verifies_the_name_given_not_the_address_connected(tmp_path: Path) -> None:
    pem = _certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pem)

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = int(server.sockets[0].getsockname()[1])
    loopback = NetworkPolicy.of(["127.0.0.0/8", "::1/128"])
    try:
        by_name = Endpoint(host="localhost", port=port, tls=True, tls_ca_file=str(tmp_path / "cert.pem"),
                           network=loopback, connect_timeout=5)
        conn = await Connection.open(by_name)
        conn.abort()
        # The certificate names localhost, not 127.0.0.1: the check is on the name.
        with pytest.raises(ConnectionLostError, match="certificate"):
            await Connection.open(Endpoint(host="127.0.0.1", port=port, tls=True,
                                           tls_ca_file=str(tmp_path / "cert.pem"), connect_timeout=5))
    finally:
        server.close()
        await server.wait_closed()


def _closed_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def test_with_a_policy_every_failure_reads_alike(
    listen: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def http(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read(100)
        w.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        w.close()

    web = await asyncio.start_server(http, "127.0.0.1", 0)
    web_port = int(web.sockets[0].getsockname()[1])
    silent = listen("127.0.0.1")
    allowed = NetworkPolicy.of(["127.0.0.1/32"])
    words: dict[str, set[str]] = {}
    caplog.set_level(logging.WARNING, logger="cachemigrate.network")
    try:
        cases = {
            "refused": Endpoint(port=_closed_port(), network=allowed),
            "disallowed": Endpoint(host="127.0.0.2", port=silent.port, network=allowed),
            "not redis": Endpoint(port=web_port, network=allowed),
            "silent tls": Endpoint(port=silent.port, tls=True, tls_insecure=True, network=allowed,
                                   connect_timeout=0.3),
        }
        for name, ep in cases.items():
            texts = words.setdefault(name, set())
            with pytest.raises(ConnectionLostError) as by_conn:
                conn = await Connection.open(ep)
                try:
                    await conn.execute("PING")
                finally:
                    conn.abort()
            link = ReplicationLink(ep)
            with pytest.raises(ConnectionLostError) as by_link:
                await link.connect()
            await link.close()
            for info in (by_conn, by_link):
                texts.add(str(info.value).replace(ep.display_url(), "<endpoint>"))
    finally:
        web.close()
        await web.wait_closed()
    # One text for all (the endpoint aside): nothing tells a closed port from a web server.
    assert {t.split(": ", 1)[1] for ts in words.values() for t in ts} == {UNREACHABLE}, words
    logged = caplog.text
    for detail in ("Errno 111", "outside the allowed networks", 'got "H"', "not a Redis server",
                   "timed out after 0.3 s"):
        assert detail in logged, (detail, logged)
