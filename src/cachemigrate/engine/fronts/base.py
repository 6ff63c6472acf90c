"""The role every front driver plays for the cutover (engine/cutover.py).

A *front* is the stable client-facing address of an instance (what DCS calls the instance's
IP): clients connect to it, and it forwards each new connection to one server, its *backend*.
A driver knows one kind of front (an HAProxy server slot, later a DNS name or a Kubernetes
Service) and does three things: say where the front forwards to, move it to another server, and
say whether it is healthy. Moving a front must also end the sessions open to the old server, so
that no client keeps writing there after the cutover; clients reconnect through the front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
