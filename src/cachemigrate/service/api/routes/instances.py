"""The inventory of Redis endpoints (spec §9.12): list/show in the SDK's shapes, register, remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cachemigrate.errors import ConfigError, InvalidParameterError, NotFoundError
from cachemigrate.service import endpoints, fronts, quotas
from cachemigrate.service.api import instance_schemas as s
from cachemigrate.service.api import views
from cachemigrate.service.api.deps import ERROR_RESPONSES, Offset, Principal, ServicesDep
from cachemigrate.service.db import repo

router = APIRouter(prefix="/v2/{project_id}", tags=["instances"], responses=ERROR_RESPONSES)


@router.get("/instances", response_model=s.ListInstancesResponse)
async def list_instances(
    who: Principal,
    svc: ServicesDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    name: Annotated[str | None, Query(max_length=64)] = None,
) -> s.ListInstancesResponse:
    total, rows = await svc.db.call(
        repo.list_instances, project_id=who.project_id, name=name, offset=offset, limit=limit
    )
    return s.ListInstancesResponse(instance_num=total, instances=[views.instance_list_item(i) for i in rows])


@router.get("/instances/{instance_id}", response_model=s.ShowInstanceResponse)
async def show_instance(instance_id: str, who: Principal, svc: ServicesDep) -> s.ShowInstanceResponse:
    return views.instance_info(await endpoints.registered(svc.db, who.project_id, instance_id))


@router.post("/instances", response_model=s.CreateInstanceResponse)
async def create_instance(
    body: s.CreateInstanceBody, who: Principal, svc: ServicesDep
) -> s.CreateInstanceResponse:
    """Register an existing endpoint after checking that it connects and authenticates.

    ``enable_ssl``, ``ssl_verify`` and ``access_user`` (as the DCS instance models name them) say
    how to reach it: TLS, whether to verify the server's certificate, which ACL user to log in as.
    ``front`` (our extension) is the address its clients connect to, which exchange-ip and
    rollback-ip move: an HAProxy `server` slot driven through its Runtime API. It is reached
    before the instance is accepted: 400 `DCS.4063` naming the field when it cannot be used.
    """
    await quotas.check(
        svc.db, repo.count_instances, project_id=who.project_id, limit=svc.settings.max_instances_per_project,
        what="instance",
    )
    fields = endpoints.connection_fields(
        enable_ssl=body.enable_ssl, ssl_verify=body.ssl_verify, access_user=body.access_user
    )
    try:
        endpoint = endpoints.endpoint_of(
            {"addrs": body.addrs, **fields},
            body.password or None,
            network=svc.settings.network_policy(who.project_id),
        )
    except ConfigError as exc:
        raise InvalidParameterError("addrs", str(exc)) from None
    reached = await endpoints.check(
        "addrs", endpoint, password_message="Instance password verification failed."
    )
    front = None
    if body.front is not None:
        front = fronts.describe(body.front)
        await fronts.check(front, svc.settings, who.project_id)
    inst = await svc.db.call(
        repo.add_instance,
        project_id=who.project_id,
        name=body.name,
        addrs=body.addrs,
        password_enc=svc.cipher.encrypt_optional(body.password or None),
        description=body.description or "",
        engine_version=reached.version,
        access_user=fields.get("access_user"),
        enable_ssl=bool(fields.get("enable_ssl")),
        ssl_verify=fields.get("ssl_verify", True),
        front=front,
    )
    return s.CreateInstanceResponse(instance_id=inst.id, name=inst.name)


@router.post("/instances/{instance_id}/connection-test", response_model=s.ConnectionTestResponse)
async def test_instance_connection(
    instance_id: str, who: Principal, svc: ServicesDep
) -> s.ConnectionTestResponse:
    """A cachemigrate extension: reach a registered instance now, as a migration would (connect,
    TLS, log in, INFO). 200 with what answered; 400 ``DCS.4080`` when it refuses the password or
    ACL user, 400 ``DCS.4063`` when it cannot be reached (in the same words whatever the reason,
    as at registration); 404 ``DCS.3022`` no such instance."""
    inst = await endpoints.registered(svc.db, who.project_id, instance_id)
    try:
        endpoint = endpoints.endpoint_of(
            endpoints.instance_desc(inst),
            svc.cipher.decrypt_optional(inst.password_enc),
            network=svc.settings.network_policy(who.project_id),
        )
    except ConfigError as exc:
        raise InvalidParameterError("addrs", str(exc)) from None
    reached = await endpoints.check(
        "addrs", endpoint, password_message="Instance password verification failed."
    )
    return s.ConnectionTestResponse(
        instance_id=inst.id, reachable=True, engine=reached.vendor, engine_version=reached.version
    )


@router.delete("/instances/{instance_id}", status_code=204, responses={204: {"description": "Removed"}})
async def delete_instance(instance_id: str, who: Principal, svc: ServicesDep) -> None:
    if not await svc.db.call(repo.delete_instance, project_id=who.project_id, instance_id=instance_id):
        raise NotFoundError("instance", instance_id)
