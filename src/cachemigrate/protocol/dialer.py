"""How every connection to a Redis server starts: TCP or TLS within the connect timeout, then AUTH.

``Connection`` (commands, pipelines) and ``ReplicationLink`` (the replica side) both dial here,
so TLS, the timeout, AUTH and the wording of their errors are one implementation:
- TLS verifies the server's certificate and host name unless the endpoint says ``tls_insecure``;
- errors name the endpoint by ``Endpoint.display_url()`` (password masked) and never echo the
  AUTH command: only the server's words are kept.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cachemigrate.errors import AuthError, ConfigError, ConnectionLostError, ServerError
from cachemigrate.protocol.endpoint import Endpoint

__all__ = ["authenticate", "dial", "open_stream", "tls_context"]

P = TypeVar("P", bound=asyncio.BaseProtocol)
Call = Callable[..., Awaitable[object]]


def tls_context(endpoint: Endpoint) -> ssl.SSLContext | None:
    """The client TLS context for ``endpoint`` (None without TLS): verification on, against
    ``tls_ca_file`` or the system's CAs, except with ``tls_insecure`` (a self-signed test
    server); ``tls_cert_file`` (+ ``tls_key_file``) is the client certificate. A file that cannot
    be read is a ConfigError naming it."""
    if not endpoint.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=endpoint.tls_ca_file)
        if endpoint.tls_cert_file:
            ctx.load_cert_chain(endpoint.tls_cert_file, endpoint.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        files = [f for f in (endpoint.tls_ca_file, endpoint.tls_cert_file, endpoint.tls_key_file) if f]
        raise ConfigError(f"TLS files for {endpoint.display_url()} ({', '.join(files)}): {exc}") from None
    if endpoint.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def dial(
    endpoint: Endpoint,
    protocol_factory: Callable[[], P],
    *,
    buffer_size: int | None = None,
) -> tuple[asyncio.Transport, P]:
    """Connect to ``endpoint`` (TLS handshake included) within its ``connect_timeout``.

    TCP_NODELAY is set (requests are batched by the callers, not by Nagle); ``buffer_size`` sets
    both socket buffers (a pipelining writer wants MiBs in flight), else the kernel tunes them.
    """
    ctx = tls_context(endpoint)
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(
                protocol_factory, endpoint.host, endpoint.port, ssl=ctx,
                server_hostname=endpoint.host if ctx else None,
            ),
            endpoint.connect_timeout,
        )
    except TimeoutError:
        raise ConnectionLostError(
            f"cannot connect to {endpoint.display_url()}: timed out after {endpoint.connect_timeout:g} s"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionLostError(f"cannot connect to {endpoint.display_url()}: {exc}") from None
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if buffer_size:
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, buffer_size)
    # Not an isinstance check: uvloop's transports (uvicorn's default loop) implement the same
    # interface without subclassing asyncio.Transport.
    return transport, protocol


async def open_stream(endpoint: Endpoint, *, limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``dial`` with asyncio's streams on top (what ``asyncio.open_connection`` builds)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, protocol = await dial(endpoint, lambda: asyncio.StreamReaderProtocol(reader, loop=loop))
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def auth_args(endpoint: Endpoint) -> tuple[str, ...] | None:
    """The arguments of ``AUTH``: ``(username, password)`` for an ACL user, ``(password,)`` for
    the default user, None when the endpoint has no password."""
    if endpoint.password is None:
        return None
    return (endpoint.username, endpoint.password) if endpoint.username else (endpoint.password,)


async def authenticate(endpoint: Endpoint, call: Call) -> None:
    """``AUTH [username] password`` through ``call(*args)``, which returns the reply or raises the
    mapped ServerError. A refusal is an AuthError naming the endpoint, in the server's words only
    (the command, with the password, is never echoed)."""
    args = auth_args(endpoint)
    if args is None:
        return
    try:
        await call(b"AUTH", *args)
    except ServerError as exc:
        # Any refusal of AUTH is one of authentication ("called without any password configured"
        # is a plain ERR): a LOADING or BUSY reply keeps its own type.
        cls = AuthError if type(exc) is ServerError else type(exc)
        raise cls(f"{endpoint.display_url()}: {exc.reply}", command=b"AUTH") from None
