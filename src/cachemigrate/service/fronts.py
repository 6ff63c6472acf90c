"""Fronts of registered instances (a cachemigrate extension of instance registration).

A front is the stable address an instance's clients connect to (what DCS calls the instance's
IP); exchange-ip and rollback-ip move it between the task's servers (engine/cutover.py drives
it through engine/fronts/). An instance stores its front as a description::

    {"driver": "haproxy", "address": "10.0.0.5:6379",          # where clients connect
     "runtime_api": "10.0.0.5:9999" | "/run/haproxy/admin.sock", "server": "<backend>/<server>"}

``address`` is what ``exchanged_ip`` names (its host, or host:port). The service connects to the
Runtime API for the tenant, so the same rules as for a Redis endpoint hold: a ``host:port`` must
resolve inside the project's networks (Settings.network_policy), and a unix socket must be in one
of the directories the operator lists in ``front_socket_dirs`` (none by default: a tenant must
not make the service write to any socket of its host). A front is reached (its server's state
read) before it is accepted, like the instance itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cachemigrate.engine.fronts import Front, HAProxyFront, HAProxyOptions
from cachemigrate.engine.fronts.base import resolve
from cachemigrate.engine.spec import split_host_port
from cachemigrate.errors import ConfigError, FrontError, InvalidParameterError
from cachemigrate.service.api.instance_schemas import FrontBody
from cachemigrate.service.settings import Settings

log = logging.getLogger(__name__)

DRIVERS = ("haproxy",)
CHECK_TIMEOUT = 3.0  # seconds the registration waits for the front's answer
UNREACHABLE = "the front cannot be reached, or it has no such server"


def describe(body: FrontBody) -> dict[str, Any]:
    """The stored description of a front given in a request (InvalidParameterError naming the
    field when one is wrong; nothing is reached yet)."""
    if body.driver not in DRIVERS:
        raise InvalidParameterError("front.driver", f"one of {', '.join(DRIVERS)}")
    try:
        split_host_port(body.address)
    except ConfigError as exc:
        raise InvalidParameterError("front.address", str(exc)) from None
    api = body.runtime_api.strip()
    if not api.startswith("/"):
        try:
            split_host_port(api)
        except ConfigError as exc:
            raise InvalidParameterError("front.runtime_api", f"host:port or a socket path: {exc}") from None
    backend, sep, server = body.server.partition("/")
    if not (backend and sep and server):
        raise InvalidParameterError("front.server", "<backend>/<server>")
    return {"driver": body.driver, "address": body.address, "runtime_api": api, "server": body.server}


async def open_front(desc: Mapping[str, Any], settings: Settings, project_id: str) -> Front:
    """The engine's Front of a stored description, once its Runtime API is known to be one the
    project may reach (FrontError otherwise, in words that say which rule)."""
    api = str(desc.get("runtime_api") or "")
    if desc.get("driver") not in DRIVERS:
        raise FrontError(f"front driver {desc.get('driver')!r} is not known")
    if api.startswith("/"):
        real = Path(os.path.realpath(api))
        dirs = [Path(os.path.realpath(d)) for d in settings.front_socket_dirs]
        if not any(real.is_relative_to(d) for d in dirs):
            raise FrontError("a front's Runtime API socket must be in a directory of front_socket_dirs "
                             "(the service's settings)")
    else:
        host, _ = split_host_port(api)
        policy = settings.network_policy(project_id)
        addresses = await resolve(host)
        if not addresses or policy.refused(addresses):
            raise FrontError("the front's Runtime API is outside the networks the service may reach")
    backend, _, server = str(desc.get("server") or "").partition("/")
    return HAProxyFront(HAProxyOptions(socket=api, backend=backend, server=server))


async def check(desc: Mapping[str, Any], settings: Settings, project_id: str) -> None:
    """Reach the front before an instance that names it is registered: its server's state is
    read. InvalidParameterError (front) in the same words whatever failed; the operator's log
    says what."""
    try:
        front = await open_front(desc, settings, project_id)
        async with asyncio.timeout(CHECK_TIMEOUT):
            await front.health()
    except (FrontError, ConfigError, TimeoutError) as exc:
        log.warning("front %s/%s cannot be used: %s", desc.get("runtime_api"), desc.get("server"), exc)
        raise InvalidParameterError("front", UNREACHABLE) from None


def front_host(desc: Mapping[str, Any]) -> tuple[str, int]:
    return split_host_port(str(desc["address"]))


def names(desc: Mapping[str, Any], ip: str) -> bool:
    """Whether an ``exchanged_ip`` entry names this front: its address's host, or host:port."""
    host, port = front_host(desc)
    item = ip.strip()
    if item == host or item.strip("[]") == host.strip("[]"):
        return True
    try:
        return split_host_port(item) == (host, port)
    except ConfigError:
        return False
