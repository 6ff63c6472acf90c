"""/v2/{project_id}/workers: a cachemigrate extension of the DCS API. The `cachemigrate worker`
processes of the distributed mode (service/distributed.py): heartbeat age, slots, load, and which
of the caller's project's tasks each runs (another project's tasks count in the load only)."""

from __future__ import annotations

from fastapi import APIRouter

from cachemigrate.service.api import worker_schemas as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Principal, ServicesDep
from cachemigrate.service.db import leases, repo

router = APIRouter(
    prefix="/v2/{project_id}", tags=["workers (cachemigrate extension)"], responses=ERROR_RESPONSES
)


@router.get(
    "/workers",
    response_model=s.ListWorkersResponse,
    summary="List the workers that run migration tasks",
    description="A cachemigrate extension of the DCS API (not in the DCS SDK: call it with a signed "
    "request). In distributed mode (`CACHEMIGRATE_EXECUTION_MODE=distributed`) the tasks run on "
    "`cachemigrate worker` processes, each task under a lease its worker renews with its heartbeat: "
    "every worker known to the database, with the seconds since its heartbeat, its slots, how many "
    "units it runs, and which of this project's tasks. Embedded mode: no workers (the tasks run in "
    "the service itself).",
)
async def list_workers(who: Principal, svc: ServicesDep) -> s.ListWorkersResponse:
    rows = await svc.db.call(leases.list_workers)
    _, tasks = await svc.db.call(repo.list_tasks, project_id=who.project_id, limit=100000)
    own = {t.id for t in tasks}
    return s.ListWorkersResponse(
        execution_mode=svc.settings.execution_mode,
        workers=[
            s.WorkerInfo(worker_id=w.id, heartbeat_age_seconds=round(w.heartbeat_age, 3), slots=w.slots,
                         load=len(w.units), units=[u for u in w.units if u in own], stopped=w.stopped)
            for w in rows
        ],
    )
