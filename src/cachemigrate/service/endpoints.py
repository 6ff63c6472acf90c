"""Redis endpoints named in requests: what is stored of them, the engine ``Endpoint`` they make,
and the check, before anything is stored, that a migration can reach them.

A task keeps each of its endpoints as a description without the password (stored encrypted
beside it): ``addrs`` (DCS ``host:port[,host:port...]``, IPv6 in brackets), ``id`` and ``name``
when it is a registered instance, ``db``, ``proxy_multi_db``, and our extensions, named as the
DCS instance models name them: ``enable_ssl`` (TLS, what ``rediss://`` says in a URL),
``ssl_verify`` (false: do not verify the server's certificate) and ``access_user`` (the ACL user
to log in as; the default user when absent). Absent keys mean plain TCP as the default user.

Every Endpoint the service connects to is made by ``endpoint_of``, with the project's network
policy (Settings.network_policy): the dialer refuses any address outside it before a packet is
sent. An endpoint that cannot be used, for whatever reason but a refused password, is answered
in the same words (``UNREACHABLE``): why goes to the operator's log, never to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cachemigrate.engine.reach import Reached, reach
from cachemigrate.engine.spec import UNREACHABLE, Endpoint, NetworkPolicy
from cachemigrate.errors import (
    AuthError,
    CacheMigrateError,
    ConfigError,
    InvalidParameterError,
    NotFoundError,
    PasswordRejectedError,
)
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Instance
from cachemigrate.service.db.session import Database

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0  # seconds: the caller waits for the answer


def connection_fields(
    *, enable_ssl: bool | None, ssl_verify: bool | None, access_user: str | None
) -> dict[str, Any]:
    """The extension keys of a description; defaults are left out."""
    out: dict[str, Any] = {}
    if enable_ssl:
        out["enable_ssl"] = True
        if ssl_verify is False:
            out["ssl_verify"] = False
    if access_user:
        out["access_user"] = access_user
    return out


async def registered(db: Database, project_id: str, instance_id: str) -> Instance:
    """A registered instance of the project (NotFoundError for another project's, too)."""
    inst = await db.call(repo.get_instance, project_id=project_id, instance_id=instance_id)
    if inst is None:
        raise NotFoundError("instance", instance_id)
    return inst


def instance_desc(inst: Instance) -> dict[str, Any]:
    """A registered instance as a task endpoint description."""
    return {
        "id": inst.id,
        "name": inst.name,
        "addrs": inst.addrs,
        **connection_fields(
            enable_ssl=inst.enable_ssl, ssl_verify=inst.ssl_verify, access_user=inst.access_user
        ),
    }


def endpoint_of(desc: Mapping[str, Any], password: str | None, *, network: NetworkPolicy) -> Endpoint:
    """The engine's Endpoint for a description (ConfigError when its ``addrs`` is not host:port),
    which connects only inside ``network`` (the project's: ``Settings.network_policy``)."""
    addrs = str(desc.get("addrs") or "")
    try:
        return Endpoint.from_addrs(
            addrs,
            username=desc.get("access_user") or None,
            password=password,
            tls=bool(desc.get("enable_ssl")),
            tls_insecure=desc.get("ssl_verify") is False,
            network=network,
        )
    except ConfigError as exc:
        raise ConfigError(f"bad address {addrs!r}: {exc}") from None


def first_address(desc: Mapping[str, Any]) -> tuple[str, int] | None:
    """The host and port of a description's first node, to show or compare (None for an
    ``addrs`` that is not host:port); never an Endpoint to connect to."""
    try:
        ep = Endpoint.from_addrs(str(desc.get("addrs") or ""))
    except ConfigError:
        return None
    return ep.host, ep.port


async def check(field: str, endpoint: Endpoint, *, password_message: str | None = None) -> Reached:
    """Reach ``endpoint`` as a migration would, before a request that names it is accepted.

    PasswordRejectedError when it refuses the password or ACL user; otherwise, when nothing
    usable answers (not allowed, refused, silent, not Redis, an error reply), InvalidParameterError
    (field, UNREACHABLE) whatever the reason, which the operator's log tells.
    """
    try:
        return await reach(endpoint, timeout=CHECK_TIMEOUT)
    except AuthError:
        raise PasswordRejectedError(field, password_message) from None
    except CacheMigrateError as exc:
        log.warning("%s %s cannot be used: %s: %s", field, endpoint.display_url(), type(exc).__name__, exc)
        raise InvalidParameterError(field, UNREACHABLE) from None
