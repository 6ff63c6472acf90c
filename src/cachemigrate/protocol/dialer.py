"""How every connection to a Redis server starts: TCP or TLS within the connect timeout, then AUTH.

``Connection`` (commands, pipelines) and ``ReplicationLink`` (the replica side) both dial here,
so TLS, the timeout, AUTH and the wording of their errors are one implementation:
- TLS verifies the server's certificate and host name unless the endpoint says ``tls_insecure``;
- errors name the endpoint by ``Endpoint.display_url()`` (password masked) and never echo the
  AUTH command: only the server's words are kept;
- the endpoint's network policy is applied here, before any packet is sent, so no path can
  connect around it; with a policy, failures are worded alike (``connection_error``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cachemigrate.errors import (
    AddressNotAllowedError,
    AuthError,
    ConfigError,
    ConnectionLostError,
    ServerError,
)
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.netpolicy import UNREACHABLE, operator_log

__all__ = ["authenticate", "connection_error", "dial", "open_stream", "resolve", "tls_context"]

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

    The host is resolved once; with a network policy every address must be allowed before
    anything is sent, and the socket connects to those checked addresses (in the resolver's
    order), not to the name (protocol/netpolicy.py). TCP_NODELAY is set (requests are batched by
    the callers, not by Nagle); ``buffer_size`` sets both socket buffers (a pipelining writer
    wants MiBs in flight), else the kernel tunes them.
    """
    ctx = tls_context(endpoint)
    try:
        transport, protocol = await asyncio.wait_for(
            _connect(endpoint, protocol_factory, ctx), endpoint.connect_timeout
        )
    except TimeoutError:
        raise connection_error(
            endpoint, "cannot connect to", f"timed out after {endpoint.connect_timeout:g} s"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise connection_error(endpoint, "cannot connect to", str(exc)) from None
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if buffer_size:
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, buffer_size)
    # Not an isinstance check: uvloop's transports (uvicorn's default loop) implement the same
    # interface without subclassing asyncio.Transport.
    return transport, protocol


Address = tuple[socket.AddressFamily, tuple[Any, ...]]  # (family, sockaddr) as getaddrinfo gives


async def resolve(host: str, port: int) -> list[Address]:
    """``host``'s TCP addresses, resolved once, in the resolver's order (OSError if none)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    out: list[Address] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in out:
            out.append((family, sockaddr))
    return out


async def _connect(
    endpoint: Endpoint, protocol_factory: Callable[[], P], ctx: ssl.SSLContext | None
) -> tuple[asyncio.Transport, P]:
    addresses = await resolve(endpoint.host, endpoint.port)
    policy = endpoint.network
    if policy is not None:
        refused = policy.refused(str(sockaddr[0]) for _, sockaddr in addresses)
        if refused or not addresses:
            outside = ", ".join(refused) or "no address"
            raise connection_error(
                endpoint, "cannot connect to",
                f"{outside} outside the allowed networks ({policy.describe()})", AddressNotAllowedError,
            )
    sock = await _connected_socket(endpoint, addresses)
    loop = asyncio.get_running_loop()
    try:
        # The checked address is connected already: TLS verifies the name the caller gave.
        transport, protocol = await loop.create_connection(
            protocol_factory, sock=sock, ssl=ctx, server_hostname=endpoint.host if ctx else None
        )
    except BaseException:
        sock.close()
        raise
    return transport, protocol


async def _connected_socket(endpoint: Endpoint, addresses: list[Address]) -> socket.socket:
    """A socket connected to the first of ``addresses`` that accepts (each tried in turn)."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            errors.append(f"{sockaddr[0]}: {exc.strerror or exc}" if len(addresses) > 1 else str(exc))
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise OSError("; ".join(errors) or f"{endpoint.host} resolves to no address")


def connection_error(
    endpoint: Endpoint, what: str, detail: str, cls: type[ConnectionLostError] = ConnectionLostError
) -> ConnectionLostError:
    """``cls("{what} {endpoint}: {detail}")`` — except with a network policy (the service, on a
    caller's behalf), where the caller reads only that the endpoint cannot be reached, whatever
    happened (no port-scan oracle) and the detail goes to the operator's log."""
    where = f"{what} {endpoint.display_url()}".strip()
    if endpoint.network is None:
        return cls(f"{where}: {detail}")
    operator_log.warning("%s: %s", where, detail)
    return cls(f"{where}: {UNREACHABLE}")


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
