"""The role every front driver plays for the cutover (engine/cutover.py).

A *front* is the stable client-facing address of an instance (what DCS calls the instance's
IP): clients connect to it, and it forwards each new connection to one server, its *backend*.
A driver knows one kind of front (an HAProxy server slot, later a DNS name or a Kubernetes
Service) and does three things: say where the front forwards to, move it to another server, and
say whether it is healthy. Moving a front must also end the sessions open to the old server, so
that no client keeps writing there after the cutover; clients reconnect through the front.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

from cachemigrate.errors import FrontError
from cachemigrate.protocol.endpoint import Endpoint


@dataclass(frozen=True, slots=True)
class FrontHealth:
    """The front's own view: whether it forwards at all, and the driver's words for its state."""

    up: bool
    detail: str


class Front(Protocol):
    """One front; ``name`` says which in log lines and errors (no secret in it).

    ``backend()`` is the server new connections go to (host and port only). ``switch_to(server)``
    points new connections at ``server`` and closes the sessions open through the front, then
    checks that the front reports the new address. All of them raise FrontError.
    """

    @property
    def name(self) -> str: ...

    async def backend(self) -> Endpoint: ...

    async def switch_to(self, server: Endpoint) -> None: ...

    async def health(self) -> FrontHealth: ...


async def resolve(host: str) -> list[str]:
    """The IP addresses of ``host`` (itself when it is one): a front reports and takes IPs, a URL
    may name a host. FrontError when it does not resolve."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FrontError(f"cannot resolve {host!r}: {exc}") from None
    return list(dict.fromkeys(str(i[4][0]) for i in infos))
