"""/v2/{project_id}/migration-task/{task_id}/verifications: a cachemigrate extension of the DCS
API. Verify a migration task's target against its live source (engine/verify.py, in the
background), show one verification's report, list the task's verifications.

Another project's task is unknown (400 DCS.4133) as any unknown task; a task without a live
source (a backup import, an online task not configured yet) is 400 DCS.4957.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cachemigrate.errors import InvalidParameterError
from cachemigrate.service.api import verification_schemas as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Limit, Offset, Principal, ServicesDep
from cachemigrate.service.db.models import Verification

router = APIRouter(prefix="/v2/{project_id}", tags=["verifications (cachemigrate extension)"],
                   responses=ERROR_RESPONSES)
EXTENSION = "A cachemigrate extension of the DCS API (not in the DCS SDK: call it with a signed request). "


def info(row: Verification) -> s.VerificationInfo:
    report: dict[str, Any] | None = row.report
    return s.VerificationInfo(
        verification_id=row.id,
        task_id=row.task_id,
        status=row.status,
        mode=row.mode,
        sample=row.sample,
        rounds=row.rounds,
        repair=row.repair,
        created_at=row.created_at,
        updated_at=row.updated_at,
        error_message=row.error_message,
        report=None if report is None else s.VerificationReport.model_validate(
            {k: v for k, v in report.items() if k != "mode"}
        ),
    )


@router.post(
    "/migration-task/{task_id}/verifications",
    status_code=202,
    response_model=s.CreateVerificationResponse,
    summary="Verify a migration task's target against its source",
    description=EXTENSION
    + "Compares the task's target with its live source as `cachemigrate compare` does: every key "
    "(`mode` full) or about `sample` random keys of each side (`mode` sampled); the keys that "
    "differ are read again up to `rounds` times, so writes still in flight of an incremental "
    "migration converge; with `repair`, each key still different is copied again from the source "
    "(a key absent from the source is deleted from the target) and checked again. Answers 202 at "
    "once with the verification's id: it runs in the background (GET it for its status and "
    "report). One verification of a task runs at a time. 400 DCS.4957: the task has no live "
    "source (a backup import, or an online task not configured yet), or a verification of it is "
    "running. 400 DCS.4133: no such task (another project's is unknown too).",
)
async def create_verification(
    task_id: str, who: Principal, svc: ServicesDep, body: s.CreateVerificationBody | None = None
) -> s.CreateVerificationResponse:
    body = body or s.CreateVerificationBody()
    if body.mode == "sampled" and body.sample is None:
        raise InvalidParameterError("sample", "required with mode sampled")
    if body.mode == "full" and body.sample is not None:
        raise InvalidParameterError("sample", "only with mode sampled")
    row = await svc.verifications.create(
        who.project_id, task_id, mode=body.mode, sample=body.sample, rounds=body.rounds, repair=body.repair
    )
    return s.CreateVerificationResponse(verification_id=row.id, status=row.status)


@router.get(
    "/migration-task/{task_id}/verifications/{verification_id}",
    response_model=s.VerificationInfo,
    summary="Show a verification of a migration task",
    description=EXTENSION
    + "Status RUNNING, SUCCESS (it ran to its end: `report.mismatches` says whether the two "
    "sides differ) or FAILED (`error_message`). The report: keys compared, keys still different by "
    "kind (missing, extra, type, value, ttl), what the first look found, the differences that "
    "converged on a re-check, keys repaired, and at most 50 of the keys still different. 400 "
    "DCS.4063: no such verification of this task.",
)
async def show_verification(
    task_id: str, verification_id: str, who: Principal, svc: ServicesDep
) -> s.VerificationInfo:
    return info(await svc.verifications.get(who.project_id, task_id, verification_id))


@router.get(
    "/migration-task/{task_id}/verifications",
    response_model=s.ListVerificationsResponse,
    summary="List the verifications of a migration task",
    description=EXTENSION + "Newest first, with their reports.",
)
async def list_verifications(
    task_id: str, who: Principal, svc: ServicesDep, offset: Offset = 0, limit: Limit = 10
) -> s.ListVerificationsResponse:
    total, rows = await svc.verifications.list(who.project_id, task_id, offset=offset, limit=limit)
    return s.ListVerificationsResponse(total_num=total, verifications=[info(r) for r in rows])
