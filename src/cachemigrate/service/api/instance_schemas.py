"""The instance inventory's wire models (our extension, spec §9.12): an existing Redis endpoint
registered with its front, and how instances are answered (no password, ever)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cachemigrate.service.api.fields import (
    HOST_PORT,
    AccessUser,
    Addrs,
    Description,
    EnableSsl,
    In,
    Name,
    Out,
    Password,
    SslVerify,
)


class FrontBody(In):
    """Our extension: the instance's front, the stable address its clients connect to (what DCS
    calls the instance's IP), which exchange-ip and rollback-ip move between servers."""

    driver: Annotated[
        str, Field(max_length=32, json_schema_extra={"enum": ["haproxy"]},
                   description="haproxy: one `server` of a `mode tcp` backend, driven through "
                   "HAProxy's Runtime API (admin level)")
    ]
    address: Annotated[
        str, Field(max_length=300, json_schema_extra={"pattern": f"^{HOST_PORT}$"},
                   description="where clients connect (host:port): what `exchanged_ip` names")
    ]
    runtime_api: Annotated[
        str, Field(max_length=300, description="the Runtime API: `host:port`, or the absolute path of "
                   "its unix socket in a directory the operator allows (`front_socket_dirs`)")
    ]
    server: Annotated[
        str, Field(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+/[A-Za-z0-9_.:-]+$",
                   description="`<backend>/<server>`: the server slot the front forwards to")
    ]


class CreateInstanceBody(In):
    """Our extension (spec §9.12): register an existing Redis endpoint in the inventory."""

    name: Name
    addrs: Annotated[Addrs, Field(min_length=3)]
    password: Password = None
    description: Description | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None
    front: FrontBody | None = None


class InstanceListInfo(Out):
    instance_id: str
    name: str
    description: str
    engine: str
    engine_version: str
    status: str
    ip: str
    port: int
    domain_name: str
    no_password_access: str
    created_at: str
    enable_ssl: bool = False
    ssl_verify: bool = True
    access_user: str | None = None
    spec_code: str = ""
    capacity: int = 0


class ListInstancesResponse(Out):
    instance_num: int
    instances: list[InstanceListInfo]


class FrontInfo(Out):
    driver: str
    address: str
    runtime_api: str
    server: str


class ShowInstanceResponse(InstanceListInfo):
    backend_addrs: str
    front: FrontInfo | None = None


class CreateInstanceResponse(Out):
    instance_id: str
    name: str


class ConnectionTestResponse(Out):
    """A cachemigrate extension: a registered instance answered just now."""

    instance_id: str
    reachable: bool
    engine: str = Field(description="Who answered: redis or valkey")
    engine_version: str
