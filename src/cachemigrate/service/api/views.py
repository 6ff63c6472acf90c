"""Database rows -> wire models. The one place that decides what a response shows (no passwords)."""

from __future__ import annotations

from typing import Any

from cachemigrate.engine.status import StatusSnapshot
from cachemigrate.service import filters as task_filters
from cachemigrate.service import states as st
from cachemigrate.service.api import instance_schemas as si
from cachemigrate.service.api import schemas as s
from cachemigrate.service.db.models import Instance, Job, Task, TaskLog
from cachemigrate.service.endpoints import first_address, instance_desc


def _instance_info(desc: dict[str, Any] | None) -> s.InstanceInfo | None:
    if desc is None:
        return None
    # None: stored before addresses were checked as strictly, shown as given.
    ep = first_address(desc)
    db = desc.get("db")
    return s.InstanceInfo(
        addrs=desc.get("addrs"),
        id=desc.get("id"),
        name=desc.get("name"),
        ip=None if ep is None else ep[0],
        port=None if ep is None else str(ep[1]),
        proxy_multi_db=desc.get("proxy_multi_db"),
        db=None if db is None else str(db),
        enable_ssl=desc.get("enable_ssl"),
        ssl_verify=desc.get("ssl_verify"),
        access_user=desc.get("access_user"),
    )


def _backup_files(raw: dict[str, Any] | None) -> s.BackupFilesInfo | None:
    if raw is None:
        return None
    files = [
        s.FileInfo(file_name=str(f.get("file_name")), size=f.get("size"), update_at=f.get("update_at"))
        for f in raw.get("files") or []
    ]
    backup_id = raw.get("backup_id")
    return s.BackupFilesInfo(
        file_source=raw.get("file_source"),
        bucket_name=raw.get("bucket_name"),
        files=files or None,
        backup_id=backup_id,
        backup_record=s.BackupRecordRef(backup_id=backup_id) if backup_id else None,
    )


def task_detail(task: Task, *, version: str, migrator_ip: str) -> s.ShowMigrationTaskResponse:
    return s.ShowMigrationTaskResponse(
        task_id=task.id,
        task_name=task.name,
        description=task.description,
        status=task.status,
        migration_type=task.migration_type,
        migration_method=task.migration_method,
        ecs_tenant_private_ip=migrator_ip,
        backup_files=_backup_files(task.backup_files),
        network_type=task.network_type,
        source_instance=_instance_info(task.source),
        target_instance=_instance_info(task.target),
        created_at=task.created_at,
        updated_at=task.updated_at,
        released_at=task.released_at,
        version=version,
        resume_mode=task.resume_mode,
        supported_features=list(st.SUPPORTED_FEATURES),
        tenant_vpc_id=task.tenant_vpc_id,
        tenant_subnet_id=task.tenant_subnet_id,
        tenant_security_group_id=task.tenant_security_group_id,
        bandwidth_limit_mb=task.bandwidth_limit_mb,
        task_status=task.task_status,
        error_message=task.error_message,
        filter=task_filters.stored(task),
        run_by=task.run_by,
    )


def task_list_item(task: Task, *, version: str, migrator_ip: str) -> s.MigrationTaskList:
    src = task.source or {}
    tgt = task.target or {}
    files = task.backup_files or {}
    data_source = src.get("addrs") or files.get("bucket_name") or files.get("backup_id")
    return s.MigrationTaskList(
        task_id=task.id,
        task_name=task.name,
        status=task.status,
        migration_type=task.migration_type,
        migration_method=task.migration_method,
        ecs_tenant_private_ip=migrator_ip,
        data_source=data_source,
        source_instance_name=src.get("name"),
        source_instance_id=src.get("id"),
        target_instance_addrs=tgt.get("addrs"),
        target_instance_name=tgt.get("name"),
        target_instance_id=tgt.get("id"),
        created_at=task.created_at,
        description=task.description,
        error_message=task.error_message,
        released_at=task.released_at,
        version=version,
        resume_mode=task.resume_mode,
        supported_features=list(st.SUPPORTED_FEATURES),
    )


def _num(value: Any) -> str:
    if value is None:
        return "0"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def task_stats(task: Task, live: StatusSnapshot | None, *, running: bool) -> s.ShowMigrationTaskStatsResponse:
    raw: dict[str, Any] = dict(task.stats or {})
    if live is not None:
        raw.update(
            phase=str(live.phase),
            bytes_read=live.bytes_read,
            bytes_total=live.bytes_total,
            keys_read=live.keys_read,
            keys_written=live.keys_written,
            source_dbsize=live.source_dbsize,
            target_dbsize=live.target_dbsize,
            kb_per_sec=live.kb_per_sec,
            ops_per_sec=live.ops_per_sec,
            offset_lag_bytes=live.offset_lag_bytes,
        )
    if task.status in (st.SUCCESS, st.INCRMIGEATING) or raw.get("phase") in ("incremental", "done"):
        progress = 100.0
    elif raw.get("bytes_total"):
        progress = min(100.0, 100.0 * float(raw.get("bytes_read") or 0) / float(raw["bytes_total"]))
    else:
        progress = 0.0
    source_dbsize = raw.get("source_dbsize")
    target_dbsize = raw.get("target_dbsize")
    return s.ShowMigrationTaskStatsResponse(
        full_migration_progress=_num(progress),
        offset=_num(raw.get("offset_lag_bytes") or 0),
        source_dbsize=_num(source_dbsize if source_dbsize is not None else raw.get("keys_read")),
        target_dbsize=_num(target_dbsize if target_dbsize is not None else raw.get("keys_written")),
        target_input_kbps=_num(float(raw.get("kb_per_sec") or 0.0)),
        target_ops=_num(float(raw.get("ops_per_sec") or 0.0)),
        is_migrating=running and task.status in st.EXECUTING,
    )


def log_entry(row: TaskLog) -> s.MigrationLog:
    return s.MigrationLog(
        created_at=row.created_at,
        log_level=row.level,
        message=row.message,
        log_code=row.code,
        keyword=list(row.keyword or []),
    )


def instance_info(inst: Instance) -> si.ShowInstanceResponse:
    ep = first_address(instance_desc(inst))
    return si.ShowInstanceResponse(
        instance_id=inst.id,
        name=inst.name,
        description=inst.description,
        engine="Redis",
        engine_version=inst.engine_version,
        status="RUNNING",
        ip=inst.addrs if ep is None else ep[0],
        port=0 if ep is None else ep[1],
        domain_name="",
        no_password_access="false" if inst.password_enc else "true",
        created_at=inst.created_at,
        enable_ssl=inst.enable_ssl,
        ssl_verify=inst.ssl_verify,
        access_user=inst.access_user,
        backend_addrs=inst.addrs,
        front=None if inst.front is None else si.FrontInfo(**inst.front),
    )


def instance_list_item(inst: Instance) -> si.InstanceListInfo:
    return si.InstanceListInfo(**instance_info(inst).model_dump(exclude={"backend_addrs", "front"}))


def job_info(job: Job) -> s.ShowJobInfoResponse:
    return s.ShowJobInfoResponse(
        job_id=job.id,
        job_type=job.job_type,
        status=job.status,
        begin_time=job.begin_time,
        end_time=job.end_time,
        fail_reason=job.fail_reason,
    )
