"""Verifications of a migration task (a cachemigrate extension of the DCS API): the engine's
convergent compare (engine/verify.py) of the task's target against its live source, run in the
background and persisted (table ``verifications``).

Only a task with a live source can be verified: an online migration once its source and target
are configured. A backup import, or an online task not configured yet, is a wrong state
(DCS.4957) saying so. One verification of a task runs at a time. A verification that was
running when the service stopped is FAILED at the next start (it is not resumed: run another).
Once exchange-ip has moved the writes to the target (task_status EXCHANGE_SUCCESS or
ROLLBACK_FAILED), the comparison goes the way the data flows: the target is the reference and a
repair writes to the source (what the reverse sync keeps up to date), never to the live target.
A repair is refused while a switch runs. A task with filter rules is verified through them
(engine/verify.py: the source as the rules make it against the target; a repair copies through
them too); one with a Lua ``function`` cannot be (its effect cannot be predicted: DCS.4957).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from cachemigrate.engine.status import LogLevel, StatusSnapshot
from cachemigrate.errors import CacheMigrateError, NotFoundError, StateError
from cachemigrate.service import filters as task_filters
from cachemigrate.service import specs
from cachemigrate.service import states as st
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import verifications as vrepo
from cachemigrate.service.db.models import Task, Verification
from cachemigrate.service.db.session import Database
from cachemigrate.service.endpoints import endpoint_of
from cachemigrate.service.settings import Settings
from cachemigrate.service.tasks import TaskService

if TYPE_CHECKING:
    from cachemigrate.engine.spec import PipelineOptions

log = logging.getLogger(__name__)

FULL, SAMPLED = "full", "sampled"
INTERRUPTED = "the service restarted while the verification was running"
MAX_LOG_LINES = 20  # what a verification's report keeps of what the engine said (the repair's)
MAX_LOG_CHARS = 512


class _Lines:
    """EventSink keeping the first MAX_LOG_LINES log lines, as ``LEVEL message`` (bounded)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, snapshot: StatusSnapshot) -> None:
        return None

    def log(self, level: LogLevel, message: str) -> None:
        if len(self.lines) < MAX_LOG_LINES:
            self.lines.append(f"{level.name} {message}"[:MAX_LOG_CHARS])


class VerificationService:
    def __init__(self, db: Database, settings: Settings, cipher: Cipher, tasks: TaskService) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self.tasks = tasks
        self._running: set[asyncio.Task[None]] = set()
        self._starting = asyncio.Lock()  # the one-at-a-time check and the insert, together

    async def create(
        self, project_id: str, task_id: str, *, mode: str, sample: int | None, rounds: int, repair: bool
    ) -> Verification:
        """Record a verification of the task and start it in the background."""
        task = await self.tasks.get(project_id, task_id)  # another project's: unknown (DCS.4133)
        _check_verifiable(task)
        if repair and task.task_status in st.SWITCHING:
            raise StateError(
                f"A repair cannot run while the task is {task.task_status}: wait for its end.",
                kind="task", state=task.status, operation="verify",
            )
        async with self._starting:
            if await self.db.call(vrepo.count_running, task_id=task.id):
                raise StateError(
                    "A verification of this task is already running; wait for it to end.",
                    kind="task", state=task.status, operation="verify",
                )
            row = await self.db.call(
                vrepo.add_verification, project_id=project_id, task_id=task.id, mode=mode,
                sample=sample if mode == SAMPLED else None, rounds=rounds, repair=repair,
            )
        job = asyncio.create_task(self.run(row, task), name=f"verification-{row.id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return row

    async def get(self, project_id: str, task_id: str, verification_id: str) -> Verification:
        task = await self.tasks.get(project_id, task_id)
        row = await self.db.call(
            vrepo.get_verification, project_id=project_id, task_id=task.id, verification_id=verification_id
        )
        if row is None:
            raise NotFoundError("verification", verification_id)
        return row

    async def list(
        self, project_id: str, task_id: str, *, offset: int, limit: int
    ) -> tuple[int, list[Verification]]:
        task = await self.tasks.get(project_id, task_id)
        total, rows = await self.db.call(
            vrepo.list_verifications, project_id=project_id, task_id=task.id, offset=offset, limit=limit
        )
        return total, list(rows)

    async def run(self, row: Verification, task: Task) -> None:
        """Compare the task's target with its source now, and record the report."""
        from cachemigrate.engine.verify import verify  # late: the engine loads on use

        verification_id = row.id
        fields: dict[str, Any]
        try:
            network = self.settings.network_policy(task.project_id)
            assert task.source is not None and task.target is not None  # _check_verifiable
            source = endpoint_of(
                task.source, self.cipher.decrypt_optional(task.source_password_enc), network=network
            )
            target = endpoint_of(
                task.target, self.cipher.decrypt_optional(task.target_password_enc), network=network
            )
            options: PipelineOptions | None = specs.options_of(task, task.source)
            if task.task_status in st.EXCHANGED:  # the writes go to the target (module docstring)
                source, target = target, source
                options = None  # (exchange-ip is refused to a task with rules)
            lines = _Lines()
            report = await verify(
                source, target, sample=row.sample if row.mode == SAMPLED else None, rounds=row.rounds,
                repair=row.repair, events=lines, options=options,
            )
            fields = {
                "status": vrepo.SUCCESS,
                "report": {**report.as_dict(), "log": lines.lines},
                "error_message": None,
            }
        except asyncio.CancelledError:
            raise  # the service stops: fail_interrupted records it at the next start
        except (CacheMigrateError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            log.warning("verification %s of task %s failed: %s", verification_id, task.id, message)
            fields = {"status": vrepo.FAILED, "error_message": message[:4000]}
        except Exception as exc:
            log.exception("verification %s of task %s crashed", verification_id, task.id)
            fields = {
                "status": vrepo.FAILED,
                "error_message": f"internal error ({type(exc).__name__}); the service log has the details",
            }
        await self.db.call(vrepo.update_verification, verification_id=verification_id, **fields)

    async def fail_interrupted(self) -> None:
        """At start-up: a verification that was running when the service stopped cannot continue."""
        for row in await self.db.call(vrepo.unfinished_verifications):
            await self.db.call(
                vrepo.update_verification, verification_id=row.id, status=vrepo.FAILED,
                error_message=INTERRUPTED,
            )

    async def close(self) -> None:
        for job in list(self._running):
            job.cancel()
        for job in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job


def _check_verifiable(task: Task) -> None:
    if task.migration_type != st.ONLINE:
        raise StateError(
            "A verification compares the task's target with its live source: a "
            f"{task.migration_type} task has no live source to compare with.",
            kind="task", state=task.status, operation="verify",
        )
    if task.source is None or task.target is None:
        raise StateError(
            "A verification compares the task's target with its live source: configure the "
            "task's source and target first (set_online_migration_task).",
            kind="task", state=task.status, operation="verify",
        )
    rules = task_filters.stored(task)
    if rules and rules.get("function"):
        raise StateError(
            "A task whose filter rules have a Lua function cannot be verified: what the function "
            "does to each command cannot be predicted from the source.",
            kind="task", state=task.status, operation="verify",
        )
    if task.source.get("db") not in (None, ""):
        # The migration copies that db only; a verification compares every db index to index
        # and would count the source's other dbs as missing on the target.
        raise StateError(
            f"A task that migrates only db {task.source['db']} cannot be verified yet: a "
            "verification compares every database of the source with the target.",
            kind="task", state=task.status, operation="verify",
        )
