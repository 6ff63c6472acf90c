"""Online migration: create the task (CREATING -> RUNNING), then configure and start it."""

from __future__ import annotations

from fastapi import APIRouter

from cachemigrate.service.api import schemas as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Principal, ServicesDep

router = APIRouter(prefix="/v2/{project_id}", tags=["online migration"], responses=ERROR_RESPONSES)


@router.post("/migration/instance", response_model=s.CreateOnlineMigrationTaskResponse)
async def create_online_migration_task(
    body: s.CreateOnlineMigrationTaskBody, who: Principal, svc: ServicesDep
) -> s.CreateOnlineMigrationTaskResponse:
    """``instance_id`` is the task ID (a historical name); ``job_id`` can be polled at /jobs."""
    task_id, job_id = await svc.tasks.create_online(who.project_id, body)
    return s.CreateOnlineMigrationTaskResponse(instance_id=task_id, job_id=job_id)


@router.post("/migration/{task_id}/task", response_model=s.SetOnlineMigrationTaskResponse)
async def set_online_migration_task(
    task_id: str, body: s.SetOnlineMigrationTaskBody, who: Principal, svc: ServicesDep
) -> s.SetOnlineMigrationTaskResponse:
    task = await svc.tasks.configure(who.project_id, task_id, body)
    return s.SetOnlineMigrationTaskResponse(id=task.id, name=task.name, status=task.status)
