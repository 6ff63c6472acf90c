"""GET /v2/{project_id}/jobs/{job_id} (spec §6.2, §9.7)."""

from __future__ import annotations

from fastapi import APIRouter

from cachemigrate.errors import NotFoundError
from cachemigrate.service.api import schemas as s
from cachemigrate.service.api import views
from cachemigrate.service.api.deps import ERROR_RESPONSES, Principal, ServicesDep
from cachemigrate.service.db import repo

router = APIRouter(prefix="/v2/{project_id}", tags=["jobs"], responses=ERROR_RESPONSES)


@router.get("/jobs/{job_id}", response_model=s.ShowJobInfoResponse)
async def show_job_info(job_id: str, who: Principal, svc: ServicesDep) -> s.ShowJobInfoResponse:
    job = await svc.db.call(repo.get_job, project_id=who.project_id, job_id=job_id)
    if job is None:
        raise NotFoundError("job", job_id)
    return views.job_info(job)
