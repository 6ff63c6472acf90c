"""Keyword-only repository functions. They take a Session, know no HTTP, and never decrypt."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import func, inspect, or_, select, update
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, CursorResult

from cachemigrate.errors import ConfigError
from cachemigrate.service.db.models import (
    ENCRYPTED,
    Backup,
    Credential,
    Instance,
    Job,
    Task,
    TaskCheckpoint,
    TaskLog,
    Verification,
)

Row = TypeVar("Row", Task, Backup, Verification)  # the tables with an updated_at


def now_iso() -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (spec §2.2)."""
    return iso_of(time.time())


def iso_of(stamp: float) -> str:
    """``stamp`` (seconds since the epoch) as ``now_iso`` writes it: such strings sort as times."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_ms() -> str:
    return str(int(time.time() * 1000))


def new_id() -> str:
    return str(uuid.uuid4())


# --- credentials --------------------------------------------------------------------------------


def add_credential(
    session: Session, /, *, access_key: str, project_id: str, secret_key_enc: str, description: str = ""
) -> Credential:
    cred = Credential(
        access_key=access_key,
        project_id=project_id,
        secret_key_enc=secret_key_enc,
        description=description,
        created_at=now_iso(),
    )
    session.add(cred)
    return cred


def get_credential(session: Session, /, *, access_key: str) -> Credential | None:
    return session.get(Credential, access_key)


def list_credentials(session: Session, /, *, project_id: str | None = None) -> Sequence[Credential]:
    q = select(Credential)
    if project_id is not None:
        q = q.where(Credential.project_id == project_id)
    return session.scalars(q.order_by(Credential.created_at, Credential.access_key)).all()


def revoke_credential(session: Session, /, *, access_key: str) -> Credential | None:
    """Revoke the AK (a no-op when it already is); None when there is no such AK."""
    cred = session.get(Credential, access_key)
    if cred is not None and cred.revoked_at is None:
        cred.revoked_at = now_iso()
    return cred


def replace_credential(
    session: Session, /, *, access_key: str, new_access_key: str, secret_key_enc: str
) -> Credential | None:
    """One transaction: a new AK for the same project and description, and the old one revoked.

    None (and nothing changed) when ``access_key`` is not an active AK.
    """
    old = session.get(Credential, access_key, with_for_update=True)
    if old is None or old.revoked_at is not None:
        return None
    new = add_credential(
        session,
        access_key=new_access_key,
        project_id=old.project_id,
        secret_key_enc=secret_key_enc,
        description=old.description,
    )
    old.revoked_at = new.created_at
    old.replaced_by = new_access_key
    return new


def touch_credential(session: Session, /, *, access_key: str, at: str) -> None:
    session.execute(update(Credential).where(Credential.access_key == access_key).values(last_used_at=at))


# --- every encrypted column ---------------------------------------------------------------------


def reencrypt_all(session: Session, /, *, rotate: Callable[[str], str]) -> dict[str, int]:
    """Replace every encrypted value ``v`` (models.ENCRYPTED) with ``rotate(v)``, in this one
    transaction; the count of values per table. A value ``rotate`` refuses (ConfigError) is named
    by table, row and column, and nothing is changed."""
    counts: dict[str, int] = {}
    for model, columns in ENCRYPTED.items():
        table: str = model.__tablename__
        (pk,) = inspect(model).primary_key
        counts[table] = 0
        for row in session.scalars(select(model).order_by(pk)):
            for column in columns:
                value = getattr(row, column)
                if value is None:
                    continue
                try:
                    setattr(row, column, rotate(value))
                except ConfigError as exc:
                    ident = getattr(row, str(pk.key))
                    raise ConfigError(f"{table} {ident}, {column}: {exc}") from None
                counts[table] += 1
    return counts


# --- instances ----------------------------------------------------------------------------------


def add_instance(
    session: Session,
    /,
    *,
    project_id: str,
    name: str,
    addrs: str,
    password_enc: str | None,
    description: str,
    engine_version: str,
    access_user: str | None = None,
    enable_ssl: bool = False,
    ssl_verify: bool = True,
    front: dict[str, Any] | None = None,
) -> Instance:
    inst = Instance(
        front=front,
        id=new_id(),
        project_id=project_id,
        name=name,
        addrs=addrs,
        password_enc=password_enc,
        access_user=access_user,
        enable_ssl=enable_ssl,
        ssl_verify=ssl_verify,
        description=description,
        engine_version=engine_version,
        created_at=now_iso(),
    )
    session.add(inst)
    return inst


def get_instance(session: Session, /, *, project_id: str, instance_id: str) -> Instance | None:
    inst = session.get(Instance, instance_id)
    return inst if inst is not None and inst.project_id == project_id else None


def list_instances(
    session: Session,
    /,
    *,
    project_id: str | None,
    name: str | None = None,
    offset: int = 0,
    limit: int = 1000,
) -> tuple[int, Sequence[Instance]]:
    q = select(Instance)
    if project_id is not None:
        q = q.where(Instance.project_id == project_id)
    if name:
        q = q.where(Instance.name.contains(name, autoescape=True))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Instance.created_at, Instance.id).offset(offset).limit(limit)).all()
    return total, rows


def count_instances(session: Session, /, *, project_id: str) -> int:
    q = select(func.count()).select_from(Instance).where(Instance.project_id == project_id)
    return session.scalar(q) or 0


def delete_instance(session: Session, /, *, project_id: str, instance_id: str) -> bool:
    inst = get_instance(session, project_id=project_id, instance_id=instance_id)
    if inst is None:
        return False
    session.delete(inst)
    return True


# --- tasks --------------------------------------------------------------------------------------


def add_task(
    session: Session, /, *, project_id: str, name: str, migration_type: str, status: str, **fields: Any
) -> Task:
    stamp = now_iso()
    task = Task(
        id=new_id(),
        project_id=project_id,
        name=name,
        migration_type=migration_type,
        status=status,
        created_at=stamp,
        updated_at=stamp,
        deleted=False,
        **fields,
    )
    task.description = task.description or ""
    task.resume_mode = task.resume_mode or "auto"
    session.add(task)
    return task


def get_task(session: Session, /, *, project_id: str | None, task_id: str) -> Task | None:
    """A live task of the project (any project when ``project_id`` is None)."""
    task = session.get(Task, task_id)
    if task is None or task.deleted or (project_id is not None and task.project_id != project_id):
        return None
    return task


def count_tasks(session: Session, /, *, project_id: str) -> int:
    q = select(func.count()).select_from(Task).where(Task.project_id == project_id, Task.deleted.is_(False))
    return session.scalar(q) or 0


def list_tasks(
    session: Session,
    /,
    *,
    project_id: str | None,
    name: str | None = None,
    statuses: Sequence[str] | None = None,
    offset: int = 0,
    limit: int = 10,
) -> tuple[int, Sequence[Task]]:
    q = select(Task).where(Task.deleted.is_(False))
    if project_id is not None:
        q = q.where(Task.project_id == project_id)
    if name:
        q = q.where(Task.name.contains(name, autoescape=True))
    if statuses is not None:
        q = q.where(Task.status.in_(list(statuses)))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Task.created_at.desc(), Task.id).offset(offset).limit(limit)).all()
    return total, rows


def update_task(session: Session, /, *, task_id: str, **fields: Any) -> Task | None:
    return update_row(session, Task, task_id, fields)


def update_row(session: Session, model: type[Row], row_id: str, fields: dict[str, Any]) -> Row | None:
    """Set ``fields`` on the row and its ``updated_at``; None when there is no such row."""
    row = session.get(model, row_id)
    if row is None:
        return None
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = now_iso()
    return row


def set_status_if(
    session: Session, /, *, task_id: str, allowed: Sequence[str], status: str, **fields: Any
) -> bool:
    """Compare-and-set: change the status only when it is still one of ``allowed``."""
    res = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(list(allowed)), Task.deleted.is_(False))
        .values(status=status, updated_at=now_iso(), **fields)
    )
    return bool(cast("CursorResult[Any]", res).rowcount)


def set_status_and_log(
    session: Session,
    /,
    *,
    task_id: str,
    allowed: Sequence[str],
    status: str,
    entries: Sequence[tuple[str, str, str, list[str]]],
    **fields: Any,
) -> bool:
    """``set_status_if``, and when the status changed, the log ``entries`` in the same transaction."""
    changed = set_status_if(session, task_id=task_id, allowed=allowed, status=status, **fields)
    if changed:
        add_logs(session, task_id=task_id, entries=list(entries))
    return changed


def set_switch_state(
    session: Session,
    /,
    *,
    task_id: str,
    statuses: Sequence[str],
    task_statuses: Sequence[str | None],
    entry: tuple[str, str, str, list[str]],
    **fields: Any,
) -> bool:
    """Compare-and-set of an IP switch (exchange-ip, rollback-ip): the ``fields`` (task_status,
    status...) change only when the status is one of ``statuses`` and the task_status one of
    ``task_statuses`` (None: none yet); the log ``entry`` with them, in the same transaction."""
    named = [s for s in task_statuses if s is not None]
    current: ColumnElement[bool] = Task.task_status.in_(named)
    if None in task_statuses:
        current = or_(current, Task.task_status.is_(None))
    res = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(list(statuses)), current, Task.deleted.is_(False))
        .values(updated_at=now_iso(), **fields)
    )
    changed = bool(cast("CursorResult[Any]", res).rowcount)
    if changed:
        add_logs(session, task_id=task_id, entries=[entry])
    return changed


def switched_tasks(session: Session, /, *, task_statuses: Sequence[str]) -> Sequence[Task]:
    """Every project's tasks whose task_status is one of ``task_statuses`` (not deleted)."""
    q = select(Task).where(Task.deleted.is_(False), Task.task_status.in_(list(task_statuses)))
    return session.scalars(q.order_by(Task.created_at, Task.id)).all()


def status_counts(session: Session, /) -> dict[str, int]:
    q = select(Task.status, func.count()).where(Task.deleted.is_(False)).group_by(Task.status)
    return {status: int(n) for status, n in session.execute(q).all()}


# --- logs ---------------------------------------------------------------------------------------


def add_logs(
    session: Session, /, *, task_id: str, entries: Sequence[tuple[str, str, str, list[str]]]
) -> None:
    """Entries are (level, code, message, keyword)."""
    for level, code, message, keyword in entries:
        session.add(
            TaskLog(
                task_id=task_id,
                created_at=now_iso(),
                level=level,
                code=code,
                message=message,
                keyword=keyword,
            )
        )


def list_logs(
    session: Session, /, *, task_id: str, levels: Sequence[str] | None, offset: int, limit: int
) -> tuple[int, Sequence[TaskLog]]:
    q = select(TaskLog).where(TaskLog.task_id == task_id)
    if levels is not None:
        q = q.where(TaskLog.level.in_(list(levels)))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(TaskLog.id.desc()).offset(offset).limit(limit)).all()
    return total, rows


# --- checkpoints --------------------------------------------------------------------------------


def load_checkpoint(session: Session, /, *, task_id: str) -> str | None:
    row = session.get(TaskCheckpoint, task_id)
    return None if row is None else row.data


def save_checkpoint(session: Session, /, *, task_id: str, data: str) -> None:
    row = session.get(TaskCheckpoint, task_id)
    if row is None:
        session.add(TaskCheckpoint(task_id=task_id, data=data, updated_at=now_iso()))
    else:
        row.data = data
        row.updated_at = now_iso()


def clear_checkpoint(session: Session, /, *, task_id: str) -> None:
    row = session.get(TaskCheckpoint, task_id)
    if row is not None:
        session.delete(row)


# --- jobs ---------------------------------------------------------------------------------------


def add_job(session: Session, /, *, project_id: str, job_type: str, status: str = "RUNNING") -> Job:
    job = Job(id=new_id(), project_id=project_id, job_type=job_type, status=status, begin_time=now_ms())
    session.add(job)
    return job


def finish_job(session: Session, /, *, job_id: str, ok: bool, fail_reason: str | None = None) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        job.status = "SUCCESS" if ok else "FAIL"
        job.end_time = now_ms()
        job.fail_reason = fail_reason


def get_job(session: Session, /, *, project_id: str, job_id: str) -> Job | None:
    job = session.get(Job, job_id)
    return job if job is not None and job.project_id == project_id else None
