"""The one dialer: TLS context, AUTH arguments and error wording, the same for both stacks."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cachemigrate.errors import AuthError, ConnectionLostError, LoadingError, ServerError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.dialer import auth_args, tls_context
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import ReplicationLink
from cachemigrate.protocol.resp import CommandStream

SECRET = "s3cret-pw"


def test_tls_context_verifies_unless_insecure() -> None:
    assert tls_context(Endpoint()) is None
    ctx = tls_context(Endpoint(tls=True))
    assert ctx is not None and ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    loose = tls_context(Endpoint(tls=True, tls_insecure=True))
    assert loose is not None and loose.verify_mode is ssl.CERT_NONE and not loose.check_hostname


def test_auth_args() -> None:
    assert auth_args(Endpoint()) is None
    assert auth_args(Endpoint(password="p")) == ("p",)
    assert auth_args(Endpoint(username="u", password="p")) == ("u", "p")
    assert auth_args(Endpoint(password="")) == ("",)  # an empty password is still sent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_both_stacks_word_an_unreachable_endpoint_alike() -> None:
    ep = Endpoint(port=_closed_port(), username="u", password=SECRET, connect_timeout=2)
    with pytest.raises(ConnectionLostError) as by_conn:
        await Connection.open(ep)
    with pytest.raises(ConnectionLostError) as by_link:
        await ReplicationLink(ep).connect()
    want = f"cannot connect to redis://u:***@127.0.0.1:{ep.port}: "
    for info in (by_conn, by_link):
        assert str(info.value).startswith(want) and SECRET not in str(info.value)


async def test_connect_timeout_is_the_endpoint_s() -> None:
    # A server that accepts TCP but never speaks: the TLS handshake (inside the connect) waits
    # for a ServerHello until the endpoint's timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        ep = Endpoint(port=silent.getsockname()[1], tls=True, tls_insecure=True, connect_timeout=0.3)
        timed_out = r"^cannot connect to rediss://127\.0\.0\.1:\d+: timed out after 0\.3 s$"
        for connect in (Connection.open(ep), ReplicationLink(ep).connect()):
            with pytest.raises(ConnectionLostError, match=timed_out):
                await connect


Reply = Callable[[list[bytes]], bytes]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Reply], Awaitable[int]]]:
    """A server answering each request with ``reply(argv)``: the port."""
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            parser = CommandStream(accelerated=False)
            while data := await r.read(4096):
                parser.feed(data)
                for argv in parser.pop()[0]:
                    w.write(reply(argv))
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


@pytest.mark.parametrize(
    ("refusal", "exc"),
    [
        (b"-WRONGPASS invalid username-password pair or user is disabled.\r\n", AuthError),
        (b"-ERR AUTH <password> called without any password configured for the default user.\r\n",
         AuthError),
        (b"-LOADING Redis is loading the dataset in memory\r\n", LoadingError),
    ],
)
async def test_auth_refused_alike_on_both_stacks(
    scripted: Callable[[Reply], Awaitable[int]], refusal: bytes, exc: type[Exception]
) -> None:
    def reply(argv: list[bytes]) -> bytes:
        if argv[0] == b"AUTH":
            assert argv[1:] == [b"repl", SECRET.encode()]
            return refusal
        return b"+PONG\r\n" if argv[0] == b"PING" else b"+OK\r\n"

    ep = Endpoint(port=await scripted(reply), username="repl", password=SECRET, connect_timeout=2)
    with pytest.raises(exc) as by_conn:
        await Connection.open(ep)
    link = ReplicationLink(ep)
    with pytest.raises(exc) as by_link:
        await link.connect()
    await link.close()
    words = refusal[1:].strip().decode()
    for info in (by_conn, by_link):
        assert str(info.value) == f"redis://repl:***@127.0.0.1:{ep.port}: {words}"
        assert isinstance(info.value, ServerError) and info.value.command == b"AUTH"
