"""GET /v2/{project_id}/instances/{instance_id}/backups (spec §6.16).

cachemigrate takes no backups of its own, so a known instance has an empty record list (200,
never 204); an unknown one is 404 DCS.3022.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query

from cachemigrate.service.api import schemas as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Limit, Offset, Principal, ServicesDep
from cachemigrate.service.api.errors import instance_not_found, invalid
from cachemigrate.service.db import repo

router = APIRouter(prefix="/v2/{project_id}", tags=["backups"], responses=ERROR_RESPONSES)
_TIME = re.compile(r"^\d{14}$")
TimeParam = Annotated[str | None, Query(description="UTC, yyyyMMddHHmmss", max_length=14)]


@router.get("/instances/{instance_id}/backups", response_model=s.ListBackupRecordsResponse)
async def list_backup_records(
    instance_id: str,
    who: Principal,
    svc: ServicesDep,
    begin_time: TimeParam = None,
    end_time: TimeParam = None,
    offset: Offset = 0,
    limit: Limit = 10,
) -> s.ListBackupRecordsResponse:
    for field, value in (("begin_time", begin_time), ("end_time", end_time)):
        if value is not None and not _TIME.match(value):
            raise invalid(field, "yyyyMMddHHmmss")
    inst = await svc.db.call(repo.get_instance, project_id=who.project_id, instance_id=instance_id)
    if inst is None:
        raise instance_not_found()
    return s.ListBackupRecordsResponse(total_num=0, backup_record_response=[])
