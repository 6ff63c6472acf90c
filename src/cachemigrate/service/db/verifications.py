"""Keyword-only repository functions for task verifications (same conventions as ``repo``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cachemigrate.service.db.models import Verification
from cachemigrate.service.db.repo import new_id, now_iso, update_row

RUNNING, SUCCESS, FAILED = "RUNNING", "SUCCESS", "FAILED"


def add_verification(
    session: Session, /, *, project_id: str, task_id: str, mode: str, sample: int | None, rounds: int,
    repair: bool,
) -> Verification:
    stamp = now_iso()
    row = Verification(
        id=new_id(), project_id=project_id, task_id=task_id, status=RUNNING, mode=mode, sample=sample,
        rounds=rounds, repair=repair, created_at=stamp, updated_at=stamp,
    )
    session.add(row)
    return row


def get_verification(
    session: Session, /, *, project_id: str, task_id: str, verification_id: str
) -> Verification | None:
    """One of the task's verifications; another project's or another task's is None."""
    row = session.get(Verification, verification_id)
    if row is None or row.project_id != project_id or row.task_id != task_id:
        return None
    return row


def list_verifications(
    session: Session, /, *, project_id: str, task_id: str, offset: int = 0, limit: int = 10
) -> tuple[int, Sequence[Verification]]:
    """Newest first."""
    where = (Verification.project_id == project_id, Verification.task_id == task_id)
    total = session.scalar(select(func.count()).select_from(Verification).where(*where)) or 0
    q = select(Verification).where(*where).order_by(Verification.created_at.desc(), Verification.id)
    return total, session.scalars(q.offset(offset).limit(limit)).all()


def count_running(session: Session, /, *, task_id: str) -> int:
    q = select(func.count()).select_from(Verification).where(
        Verification.task_id == task_id, Verification.status == RUNNING
    )
    return session.scalar(q) or 0


def unfinished_verifications(session: Session, /) -> Sequence[Verification]:
    return session.scalars(select(Verification).where(Verification.status == RUNNING)).all()


def update_verification(session: Session, /, *, verification_id: str, **fields: Any) -> Verification | None:
    return update_row(session, Verification, verification_id, fields)
