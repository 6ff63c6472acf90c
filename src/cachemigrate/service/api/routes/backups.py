"""/v2/{project_id}/instances/{instance_id}/backups: take a backup (SDK copy_instance), list the
records (list_backup_records, spec §6.16: 200 with a possibly empty list, never 204; an unknown
instance is 404 DCS.3022; another project's instance is unknown too), and delete one
(delete_backup_file: DELETE .../backups/{backup_id}, 204).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Response

from cachemigrate.errors import InvalidParameterError
from cachemigrate.service.api import backup_schemas as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Limit, Offset, Principal, ServicesDep
from cachemigrate.service.db import backups as brepo
from cachemigrate.service.db.models import Backup

router = APIRouter(prefix="/v2/{project_id}", tags=["backups"], responses=ERROR_RESPONSES)
_TIME = re.compile(r"^\d{14}$")
TimeParam = Annotated[
    str | None, Query(description="UTC, yyyyMMddHHmmss", max_length=14, pattern=_TIME.pattern)
]


def _iso(value: str) -> str:
    """yyyyMMddHHmmss -> the ISO prefix created_at values compare with."""
    v = value
    return f"{v[0:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}"


def record(row: Backup) -> s.BackupRecordResponse:
    return s.BackupRecordResponse(
        backup_id=row.id,
        backup_name=row.name,
        instance_id=row.instance_id,
        size=row.size,
        backup_type=row.backup_type,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        progress=row.progress,
        remark=row.remark,
        is_support_restore="TRUE" if row.status == "succeed" else "FALSE",
        backup_format=row.backup_format,
        period="",
        execution_at=row.execution_at or "",
        error_code=row.error_code,
    )


@router.post("/instances/{instance_id}/backups", response_model=s.CopyInstanceResponse)
async def copy_instance(
    instance_id: str, who: Principal, svc: ServicesDep, body: s.BackupInstanceBody | None = None
) -> s.CopyInstanceResponse:
    """Back up an instance: its RDB over the replication protocol into the backup store."""
    if body is not None and body.backup_format not in (None, "", "rdb"):
        raise InvalidParameterError("backup_format", "only rdb backups are taken")
    row = await svc.backups.create(who.project_id, instance_id, remark=(body.remark if body else None) or "")
    return s.CopyInstanceResponse(backup_id=row.id)


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
            raise InvalidParameterError(field, "yyyyMMddHHmmss")
    inst = await svc.backups.instance(who.project_id, instance_id)
    total, rows = await svc.db.call(
        brepo.list_backups,
        project_id=who.project_id,
        instance_id=inst.id,
        begin=_iso(begin_time) if begin_time else None,
        end=_iso(end_time) + ".999Z" if end_time else None,
        offset=offset,
        limit=limit,
    )
    return s.ListBackupRecordsResponse(total_num=total, backup_record_response=[record(r) for r in rows])


@router.delete(
    "/instances/{instance_id}/backups/{backup_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted: the backup file and its record"}},
)
async def delete_backup_file(instance_id: str, backup_id: str, who: Principal, svc: ServicesDep) -> Response:
    """Delete a backup: `DELETE /v2/{project_id}/instances/{instance_id}/backups/{backup_id}` (the
    SDK's `delete_backup_file`). The file leaves the backup store, the record the list.

    400 `DCS.4087`: no such backup of this instance (another project's is unknown too); 400
    `DCS.4096`: it is still being taken; 400 `DCS.4097`: a running migration task imports it
    (stop it first). 404 `DCS.3022`: no such instance. The backups of an instance that was
    removed from the inventory can still be deleted.
    """
    await svc.backups.delete(who.project_id, instance_id, backup_id)
    return Response(status_code=204)
