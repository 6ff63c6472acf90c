"""Keyword-only repository functions for instance backups (same conventions as ``repo``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cachemigrate.service.db.models import Backup, Task
from cachemigrate.service.db.repo import new_id, now_iso, update_row


def add_backup(
    session: Session, /, *, project_id: str, instance_id: str, name: str, remark: str, location: str,
    backup_id: str | None = None,
) -> Backup:
    stamp = now_iso()
    row = Backup(
        id=backup_id or new_id(),
        project_id=project_id,
        instance_id=instance_id,
        name=name,
        remark=remark,
        backup_format="rdb",
        backup_type="manual",
        status="waiting",
        progress="0.00",
        size=0,
        location=location,
        created_at=stamp,
        updated_at=stamp,
    )
    session.add(row)
    return row


def get_backup(session: Session, /, *, project_id: str | None, backup_id: str) -> Backup | None:
    """A backup of the project (any project when None); another project's is None, as an unknown one."""
    row = session.get(Backup, backup_id)
    return row if row is not None and project_id in (None, row.project_id) else None


def delete_backup(session: Session, /, *, backup_id: str) -> None:
    row = session.get(Backup, backup_id)
    if row is not None:
        session.delete(row)


def backup_in_use(session: Session, /, *, project_id: str, backup_id: str, statuses: Sequence[str]) -> bool:
    """Whether a live task of the project in one of ``statuses`` imports the backup."""
    q = select(func.count()).select_from(Task).where(
        Task.project_id == project_id,
        Task.deleted.is_(False),
        Task.status.in_(list(statuses)),
        Task.backup_files["file_source"].as_string() == "backup_record",
        Task.backup_files["backup_id"].as_string() == backup_id,
    )
    return bool(session.scalar(q))


def succeeded_beyond(
    session: Session, /, *, project_id: str, instance_id: str, keep: int
) -> Sequence[Backup]:
    """The instance's succeeded backups after its ``keep`` newest (retention), newest first."""
    q = select(Backup).where(
        Backup.project_id == project_id, Backup.instance_id == instance_id, Backup.status == "succeed"
    )
    return session.scalars(q.order_by(Backup.created_at.desc(), Backup.id).offset(keep)).all()


def count_backups(session: Session, /, *, project_id: str) -> int:
    q = select(func.count()).select_from(Backup).where(Backup.project_id == project_id)
    return session.scalar(q) or 0


def update_backup(session: Session, /, *, backup_id: str, **fields: Any) -> Backup | None:
    return update_row(session, Backup, backup_id, fields)


def list_backups(
    session: Session,
    /,
    *,
    project_id: str,
    instance_id: str,
    begin: str | None = None,
    end: str | None = None,
    offset: int = 0,
    limit: int = 10,
) -> tuple[int, Sequence[Backup]]:
    """Newest first; ``begin``/``end`` compare with created_at (ISO strings sort by time)."""
    q = select(Backup).where(Backup.project_id == project_id, Backup.instance_id == instance_id)
    if begin:
        q = q.where(Backup.created_at >= begin)
    if end:
        q = q.where(Backup.created_at <= end)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Backup.created_at.desc(), Backup.id).offset(offset).limit(limit)).all()
    return total, rows


def unfinished_backups(session: Session, /) -> Sequence[Backup]:
    return session.scalars(select(Backup).where(Backup.status.in_(["waiting", "backuping"]))).all()
