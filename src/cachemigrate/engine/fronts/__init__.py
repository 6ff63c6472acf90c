"""Fronts: the stable client-facing addresses a cutover moves (base.py: the role).

``open_front(url)`` picks the driver by the URL's scheme: one module per driver, so a DNS
(RFC 2136) or Kubernetes Service driver is one more module and one more line below.

They live in the engine, not the service: the cutover sequence that drives them
(engine/cutover.py) also pauses and reads the Redis servers, which only the engine may reach.
"""

from __future__ import annotations

from cachemigrate.engine.fronts.base import Front, FrontHealth
from cachemigrate.engine.fronts.haproxy import HAProxyFront, HAProxyOptions
from cachemigrate.errors import ConfigError

SCHEMES = ("haproxy",)


def open_front(url: str) -> Front:
    """The front a URL names (``haproxy:///admin.sock?server=be/srv``); ConfigError otherwise."""
    scheme = url.partition("://")[0]
    if scheme == "haproxy":
        return HAProxyFront.from_url(url)
    raise ConfigError(f"unknown front {url!r}: a front URL starts with one of {', '.join(SCHEMES)}://")


__all__ = ["Front", "FrontHealth", "HAProxyFront", "HAProxyOptions", "open_front"]
