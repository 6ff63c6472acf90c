"""The inventory of Redis endpoints (spec §9.12): list/show in the SDK's shapes, register, remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cachemigrate.service.api import schemas as s
from cachemigrate.service.api import views
from cachemigrate.service.api.deps import ERROR_RESPONSES, Offset, Principal, ServicesDep
from cachemigrate.service.api.errors import DcsError, instance_not_found, invalid
from cachemigrate.service.db import repo
from cachemigrate.service.probe import ProbeResult, probe

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
    inst = await svc.db.call(repo.get_instance, project_id=who.project_id, instance_id=instance_id)
    if inst is None:
        raise instance_not_found()
    return views.instance_info(inst)


@router.post("/instances", response_model=s.CreateInstanceResponse)
async def create_instance(
    body: s.CreateInstanceBody, who: Principal, svc: ServicesDep
) -> s.CreateInstanceResponse:
    """Register an existing endpoint after checking that it connects and authenticates."""
    result = await probe(body.addrs, body.password)
    if result.result is ProbeResult.AUTH:
        raise DcsError(400, "DCS.4080", "Instance password verification failed.")
    if result.result is not ProbeResult.OK:
        raise invalid("addrs", f"cannot connect: {result.detail}")
    inst = await svc.db.call(
        repo.add_instance,
        project_id=who.project_id,
        name=body.name,
        addrs=body.addrs,
        password_enc=svc.cipher.encrypt_optional(body.password or None),
        description=body.description or "",
        engine_version=result.version,
    )
    return s.CreateInstanceResponse(instance_id=inst.id, name=inst.name)


@router.delete("/instances/{instance_id}", status_code=204, responses={204: {"description": "Removed"}})
async def delete_instance(instance_id: str, who: Principal, svc: ServicesDep) -> None:
    if not await svc.db.call(repo.delete_instance, project_id=who.project_id, instance_id=instance_id):
        raise instance_not_found()
