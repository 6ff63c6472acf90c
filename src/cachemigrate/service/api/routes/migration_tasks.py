"""/v2/{project_id}/migration-task(s): create, list, show, stats, logs, stop, restart, delete, update."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from cachemigrate.errors import InvalidParameterError
from cachemigrate.service import states as st
from cachemigrate.service.api import schemas as s
from cachemigrate.service.api import views
from cachemigrate.service.api.deps import ERROR_RESPONSES, Limit, Offset, Principal, ServicesDep
from cachemigrate.service.api.errors import DcsError, dcs_error
from cachemigrate.service.db import repo
from cachemigrate.service.tasklogs import LEVELS
from cachemigrate.service.tasks import BatchResult

router = APIRouter(prefix="/v2/{project_id}", tags=["migration tasks"], responses=ERROR_RESPONSES)
NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "No content"}}


def _batch_results(results: list[BatchResult]) -> list[s.StopMigrationTaskResult]:
    out = []
    for r in results:
        if r.error is None:
            out.append(s.StopMigrationTaskResult(task_id=r.task_id, result="success"))
            continue
        err = dcs_error(r.error) or DcsError(500, "DCS.5000", "Internal service error.")
        out.append(
            s.StopMigrationTaskResult(
                task_id=r.task_id, result="failed", error_code=err.code, error_msg=err.message
            )
        )
    return out


@router.post("/migration-task", response_model=s.CreateMigrationTaskResponse)
async def create_migration_task(
    body: s.CreateMigrationTaskBody, who: Principal, svc: ServicesDep
) -> s.CreateMigrationTaskResponse:
    """Backup import (or the legacy one-call online migration, spec §5.5)."""
    task = await svc.tasks.create(who.project_id, body)
    return s.CreateMigrationTaskResponse(id=task.id, name=task.name, status=task.status)


@router.post("/migration-task/batch-stop", response_model=s.BatchStopMigrationTasksResponse)
async def batch_stop_migration_tasks(
    body: s.BatchStopMigrationTasksBody, who: Principal, svc: ServicesDep
) -> s.BatchStopMigrationTasksResponse:
    results = await svc.tasks.batch(who.project_id, body.migration_tasks, "stop")
    return s.BatchStopMigrationTasksResponse(migration_tasks=_batch_results(results))


@router.post("/migration-tasks/batch-restart", response_model=s.BatchRestartOnlineMigrationTasksResponse)
async def batch_restart_online_migration_tasks(
    body: s.BatchRestartOnlineMigrationTasksBody, who: Principal, svc: ServicesDep
) -> s.BatchRestartOnlineMigrationTasksResponse:
    results = await svc.tasks.batch(who.project_id, body.migration_tasks, "restart")
    return s.BatchRestartOnlineMigrationTasksResponse(migration_tasks=_batch_results(results))


@router.delete("/migration-tasks/delete", response_model=s.DeleteMigrationTaskResponse)
async def delete_migration_task(
    body: s.DeleteMigrateTaskRequest, who: Principal, svc: ServicesDep
) -> s.DeleteMigrationTaskResponse:
    return s.DeleteMigrationTaskResponse(
        task_id_list=await svc.tasks.delete(who.project_id, body.task_id_list)
    )


@router.get("/migration-tasks", response_model=s.ListMigrationTaskResponse)
async def list_migration_task(
    who: Principal,
    svc: ServicesDep,
    offset: Offset = 0,
    limit: Limit = 10,
    name: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[
        str | None,
        Query(max_length=256, description="A cachemigrate extension: only tasks in these statuses "
              "(comma-separated, e.g. FULLMIGRATING,INCRMIGEATING; INCRMIGRATING is accepted too)"),
    ] = None,
) -> s.ListMigrationTaskResponse:
    """Task names are matched as substrings; ``count`` is the total number of matches."""
    statuses = None
    if status:
        statuses = sorted({st.normalize_status(v) for v in status.split(",") if v.strip()})
        unknown = [v for v in statuses if v not in st.STATUSES]
        if unknown:
            raise InvalidParameterError("status", f"unknown status {unknown[0][:40]!r}")
    total, rows = await svc.db.call(
        repo.list_tasks, project_id=who.project_id, name=name, statuses=statuses, offset=offset, limit=limit
    )
    items = [views.task_list_item(t, version=svc.version, migrator_ip=svc.settings.migrator_ip) for t in rows]
    return s.ListMigrationTaskResponse(count=total, migration_tasks=items)


@router.get("/migration-task/{task_id}", response_model=s.ShowMigrationTaskResponse)
async def show_migration_task(task_id: str, who: Principal, svc: ServicesDep) -> s.ShowMigrationTaskResponse:
    task = await svc.tasks.get(who.project_id, task_id)
    return views.task_detail(task, version=svc.version, migrator_ip=svc.settings.migrator_ip)


@router.put("/migration-task/{task_id}", status_code=204, response_class=Response, responses=NO_CONTENT)
async def update_migration_task(
    task_id: str, body: s.MigrationUpdateRequestEntity, who: Principal, svc: ServicesDep
) -> Response:
    await svc.tasks.update(who.project_id, task_id, body)
    return Response(status_code=204)


@router.get("/migration-task/{task_id}/stats", response_model=s.ShowMigrationTaskStatsResponse)
async def show_migration_task_stats(
    task_id: str, who: Principal, svc: ServicesDep
) -> s.ShowMigrationTaskStatsResponse:
    task = await svc.tasks.get(who.project_id, task_id)
    running = svc.runner.is_running(task.id) or task.lease_expires_at is not None  # here, or on a worker
    return views.task_stats(task, svc.runner.snapshot(task.id), running=running)


@router.get("/migration-task/{task_id}/logs", response_model=s.ListMigrationTaskLogsResponse)
async def list_migration_task_logs(
    task_id: str,
    who: Principal,
    svc: ServicesDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=0, le=1000)] = 10,
    log_level: Annotated[str | None, Query(max_length=8)] = None,
) -> s.ListMigrationTaskLogsResponse:
    """Newest first. ``log_level`` is one of INFO, WARN, ERROR, DEBUG."""
    task = await svc.tasks.get(who.project_id, task_id)
    levels = None
    if log_level:
        if log_level.upper() not in LEVELS:
            raise InvalidParameterError("log_level")
        levels = [log_level.upper()]
    total, rows = await svc.db.call(
        repo.list_logs, task_id=task.id, levels=levels, offset=offset, limit=limit or 10
    )
    return s.ListMigrationTaskLogsResponse(log_num=total, migration_logs=[views.log_entry(r) for r in rows])


@router.post("/migration-task/{task_id}/stop", response_model=s.ShowMigrationTaskResponse)
async def stop_migration_task(task_id: str, who: Principal, svc: ServicesDep) -> s.ShowMigrationTaskResponse:
    """Asynchronous: answers with status TERMINATING; the task then reaches TERMINATED."""
    task = await svc.tasks.stop(who.project_id, task_id, wait=False)
    return views.task_detail(task, version=svc.version, migrator_ip=svc.settings.migrator_ip)


@router.post(
    "/migration-task/{task_id}/sync-stop", status_code=204, response_class=Response, responses=NO_CONTENT
)
async def stop_migration_task_sync(task_id: str, who: Principal, svc: ServicesDep) -> Response:
    """Answers once the task is TERMINATED."""
    await svc.tasks.stop(who.project_id, task_id, wait=True)
    return Response(status_code=204)


@router.post(
    "/migration-task/{task_id}/exchange-ip", status_code=204, response_class=Response, responses=NO_CONTENT
)
async def exchange_instance_ip(
    task_id: str, body: s.IpExchangeRequest, who: Principal, svc: ServicesDep
) -> Response:
    """Move the clients to the target: asynchronous (task_status EXCHANGING, then
    EXCHANGE_SUCCESS with status TERMINATED and the reverse sync target -> source running, or
    EXCHANGE_FAILED with everything as it was and the migration going on).

    The fronts (`front` of the task's registered instances) named in `exchanged_ip` move: a
    verification of the target (setting `exchange_verify`: sampled, full, off) first, then the
    source's writes are paused (`CLIENT PAUSE WRITE`, at most `exchange_max_pause_seconds`) until
    the target has applied its last write, the fronts are switched, the reverse sync starts, and
    the writes resume; each step is in the task's log, with the length of the pause.
    400 `DCS.4957` unless the task is INCRMIGEATING (never switched, or after EXCHANGE_FAILED or
    ROLLBACK_SUCCESS), both endpoints are registered instances with the same user and password
    and the source has a front; 400 `DCS.4063` when an address in `exchanged_ip` is no front of
    them, or the source's front is not among them.
    """
    await svc.tasks.exchange_ip(who.project_id, task_id, body)
    return Response(status_code=204)


@router.post(
    "/migration-task/{task_id}/rollback-ip", status_code=204, response_class=Response, responses=NO_CONTENT
)
async def rollback_exchange_instance_ip(task_id: str, who: Principal, svc: ServicesDep) -> Response:
    """Move the clients back to the source: asynchronous (task_status ROLLBACKING, then
    ROLLBACK_SUCCESS with status INCRMIGEATING and the migration source -> target running again,
    or ROLLBACK_FAILED with the reverse sync going on). The same sequence as exchange-ip, paused
    on the target; no verification gate. 400 `DCS.4957` unless task_status is EXCHANGE_SUCCESS
    (or ROLLBACK_FAILED).
    """
    await svc.tasks.rollback_ip(who.project_id, task_id)
    return Response(status_code=204)
