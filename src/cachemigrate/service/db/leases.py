"""Keyword-only repository functions of the distributed mode (same conventions as ``repo``): a
task's owner and lease, the fencing of its writes, the requests to its owner, the workers' table.

Every lease time is the database's clock (``now()``), never a worker's: a worker whose clock runs
fast or slow still sees its lease end when the others do. A claim is one conditional UPDATE (the
task is free: no owner, or a lease that ended), so of two claimers exactly one wins; it adds one to
the task's generation, and every write of the run carries it (``fenced``): once another worker
claimed the task, the old owner's writes are refused in the transaction that would make them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from cachemigrate.service import states as st
from cachemigrate.service.db.models import Task, Worker
from cachemigrate.service.db.repo import add_logs, now_iso

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, CursorResult

R = TypeVar("R")


class LeaseLost(Exception):
    """The task's lease is no longer this worker's (another claimed it): the write was refused."""


@dataclass(frozen=True, slots=True)
class Claim:
    task_id: str
    generation: int
    status: str
    control_request: str | None


def needs_run() -> ColumnElement[bool]:
    """A task some worker should be running: an active one, or the reverse sync of an exchanged
    one (status TERMINATED, spec §9.5), as ``Runner.resume_all`` decides after a restart."""
    return and_(
        Task.deleted.is_(False),
        or_(
            Task.status.in_(sorted(st.ACTIVE)),
            and_(Task.status == st.TERMINATED, Task.task_status.in_(sorted(st.EXCHANGED | st.SWITCHING))),
        ),
    )


def free() -> ColumnElement[bool]:
    """No owner, or its lease ended (the database's clock)."""
    return or_(Task.run_by.is_(None), Task.lease_expires_at.is_(None), Task.lease_expires_at < func.now())


def _lease_end(lease_seconds: float) -> Any:
    return func.now() + timedelta(seconds=lease_seconds)


def _rows(res: Any) -> int:
    return int(cast("CursorResult[Any]", res).rowcount)


def claim(session: Session, /, *, task_id: str, worker_id: str, lease_seconds: float) -> Claim | None:
    """The task, now ``worker_id``'s for ``lease_seconds``, with its new generation; None when it
    needs no run or another worker holds a lease on it."""
    row = session.execute(
        update(Task)
        .where(Task.id == task_id, needs_run(), free())
        .values(run_by=worker_id, lease_generation=Task.lease_generation + 1,
                lease_expires_at=_lease_end(lease_seconds))
        .returning(Task.lease_generation, Task.status, Task.control_request)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    return Claim(task_id, int(row[0]), str(row[1]), row[2])


def _mine(task_id: str, worker_id: str, generation: int) -> ColumnElement[bool]:
    return and_(Task.id == task_id, Task.run_by == worker_id, Task.lease_generation == generation)


def renew(
    session: Session, /, *, task_id: str, worker_id: str, generation: int, lease_seconds: float
) -> bool:
    """Extend the lease by ``lease_seconds`` from now; False (nothing changed) once it is not ours."""
    res = session.execute(
        update(Task).where(_mine(task_id, worker_id, generation))
        .values(lease_expires_at=_lease_end(lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return _rows(res) == 1


def release(session: Session, /, *, task_id: str, worker_id: str, generation: int) -> bool:
    """Give the task up (its run ended, or the worker stops): free at once for another claim.
    ``run_by`` stays: the worker that ran the task last (shown as such)."""
    res = session.execute(
        update(Task).where(_mine(task_id, worker_id, generation))
        .values(lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rows(res) == 1


def fenced(
    session: Session, /, *, task_id: str, worker_id: str, generation: int, write: Callable[..., R],
    kw: dict[str, Any],
) -> R:
    """``write(session, **kw)`` in this transaction, only while the lease is still ``generation``'s:
    LeaseLost (and nothing written) otherwise. The check locks the task's row (PostgreSQL) until
    the commit, so a claim made meanwhile waits for the write and the writes after it are refused."""
    res = session.execute(
        update(Task).where(_mine(task_id, worker_id, generation))
        .values(lease_generation=Task.lease_generation)
        .execution_options(synchronize_session=False)
    )
    if _rows(res) != 1:
        raise LeaseLost(f"task {task_id}: generation {generation} is no longer {worker_id}'s")
    return write(session, **kw)


def orphans(session: Session, /, *, limit: int = 1000) -> list[str]:
    """Tasks that need a run and have no live owner (the sweeper puts them back on the queue)."""
    q = select(Task.id).where(needs_run(), free()).order_by(Task.updated_at).limit(limit)
    return list(session.scalars(q).all())


def live_owner(session: Session, /, *, task_id: str) -> str | None:
    """The worker whose lease on the task has not ended, or None."""
    q = select(Task.run_by).where(
        Task.id == task_id, Task.run_by.is_not(None), Task.lease_expires_at >= func.now()
    )
    return session.scalar(q)


def request_control(session: Session, /, *, task_id: str, request: str | None) -> None:
    session.execute(
        update(Task).where(Task.id == task_id).values(control_request=request)
        .execution_options(synchronize_session=False)
    )


def request_switch(session: Session, /, *, task_id: str, request: dict[str, Any]) -> bool:
    """Hand a checked switch to the task's live owner; False when it has none (nothing written)."""
    res = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.run_by.is_not(None), Task.lease_expires_at >= func.now(),
               Task.switch_request.is_(None))
        .values(switch_request=request)
        .execution_options(synchronize_session=False)
    )
    return _rows(res) == 1


def requests_for(
    session: Session, /, *, worker_id: str
) -> list[tuple[str, int, str | None, dict[str, Any] | None]]:
    """(task, generation, control_request, switch_request) of every task ``worker_id`` owns."""
    q = select(Task.id, Task.lease_generation, Task.control_request, Task.switch_request).where(
        Task.run_by == worker_id
    )
    return [(str(a), int(b), c, d) for a, b, c, d in session.execute(q).all()]


def take_requests(session: Session, /, *, task_id: str) -> None:
    """Clear what was asked of the owner (used fenced: only the owner clears it)."""
    session.execute(
        update(Task).where(Task.id == task_id).values(control_request=None, switch_request=None)
        .execution_options(synchronize_session=False)
    )


def take_switch(session: Session, /, *, task_id: str) -> None:
    session.execute(
        update(Task).where(Task.id == task_id).values(switch_request=None)
        .execution_options(synchronize_session=False)
    )


def set_status_unowned(
    session: Session,
    /,
    *,
    task_id: str,
    allowed: Sequence[str],
    status: str,
    entries: Sequence[tuple[str, str, str, list[str]]],
) -> bool:
    """``repo.set_status_and_log`` for a task no worker holds a lease on (a stop of a task whose
    owner died); False when a worker holds it (then the owner writes the status itself)."""
    res = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(list(allowed)), Task.deleted.is_(False), free())
        .values(status=status, updated_at=now_iso(), control_request=None)
        .execution_options(synchronize_session=False)
    )
    changed = _rows(res) == 1
    if changed:
        add_logs(session, task_id=task_id, entries=list(entries))
    return changed


# --- workers ------------------------------------------------------------------------------------


def worker_beat(
    session: Session, /, *, worker_id: str, slots: int, units: list[str], keys_moved: int, bytes_moved: int,
    stopped: bool = False,
) -> None:
    """The worker's row, its heartbeat now (the database's clock)."""
    row = session.get(Worker, worker_id)
    if row is None:
        row = Worker(id=worker_id, started_at=func.now())
        session.add(row)
    row.heartbeat_at = func.now()
    row.slots = slots
    row.units = units
    row.keys_moved = keys_moved
    row.bytes_moved = bytes_moved
    row.stopped = stopped


def db_now(session: Session, /) -> datetime:
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: str
    heartbeat_age: float  # seconds, the database's clock
    slots: int
    units: list[str]
    keys_moved: int
    bytes_moved: int
    stopped: bool
    started_at: datetime


def list_workers(session: Session, /) -> list[WorkerRow]:
    now = db_now(session)
    out = []
    for w in session.scalars(select(Worker).order_by(Worker.id)).all():
        beat = w.heartbeat_at if w.heartbeat_at.tzinfo else w.heartbeat_at.replace(tzinfo=UTC)
        out.append(WorkerRow(w.id, max(0.0, (now - beat).total_seconds()), w.slots, list(w.units or []),
                             w.keys_moved, w.bytes_moved, w.stopped, w.started_at))
    return out


def owners(session: Session, /) -> dict[str, str]:
    """Task id -> the worker that holds a live lease on it."""
    q = select(Task.id, Task.run_by).where(Task.run_by.is_not(None), Task.lease_expires_at >= func.now())
    return {str(a): str(b) for a, b in session.execute(q).all()}
