"""Distributed mode: tasks run on `cachemigrate worker` processes, never in `cachemigrate serve`.

The truth is the database (db/leases.py): a task is run by the worker that holds its lease, a
lease the worker renews with its heartbeat. A Celery message (RabbitMQ) only says "task X may
need running": the worker that takes it claims the task in the database and runs it in its own
asyncio loop under the lease. The message is acknowledged as soon as it is delivered (acks_late
off, prefetch 1) and its handling lasts as long as a claim, so a task that runs for a week holds
no unacknowledged message (RabbitMQ's consumer_timeout never applies); a message that is lost,
or a worker that dies, is made good by the sweeper: every worker and every serve looks for tasks
that need a run and have no live owner, and puts them back on the queue.

Control reaches the owner through the database: a serve writes ``control_request`` ("stop") or
``switch_request`` (exchange-ip, rollback-ip) on the task, and the owner reads them with each
heartbeat; a task with no live owner is stopped by the serve itself (one conditional UPDATE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cachemigrate.engine.spec import PipelineSpec
from cachemigrate.service import states as st
from cachemigrate.service.db import leases, repo
from cachemigrate.service.db.session import Database
from cachemigrate.service.runner import Executor, Runner
from cachemigrate.service.settings import Settings
from cachemigrate.service.tasklogs import LogLine

if TYPE_CHECKING:
    from celery import Celery

    from cachemigrate.service.switching import SwitchRequest

log = logging.getLogger(__name__)

TASK_NAME = "cachemigrate.run_unit"


def celery_app(settings: Settings) -> Celery:
    """The Celery application of the serves (publishing) and the workers (consuming)."""
    from celery import Celery

    app = Celery("cachemigrate", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.broker_queue,
        # The message is done with once delivered: the work it announces lives under the lease.
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    )
    return app


class Dispatcher:
    """Puts tasks on the queue (the publishing side; blocking kombu calls run in a thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = celery_app(settings)
        # A message older than a few sweeps says nothing the sweeper would not say again.
        self.expires = max(30.0, 5 * settings.heartbeat_seconds)

    def _send(self, task_id: str) -> None:
        self.app.send_task(TASK_NAME, args=[task_id], queue=self.settings.broker_queue, expires=self.expires)

    async def enqueue(self, task_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, task_id)
        except Exception as exc:  # the broker is down: the sweeper tries again
            log.warning("cannot put task %s on the queue (the sweeper will try again): %s", task_id, exc)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.app.close()


async def sweep_forever(db: Database, dispatcher: Dispatcher, interval: float) -> None:
    """Every ``interval``: the tasks that need a run and have no live owner go back on the queue
    (one cheap query; duplicates are harmless, a claim is conditional)."""
    while True:
        try:
            for task_id in await db.call(leases.orphans):
                await dispatcher.enqueue(task_id)
        except Exception as exc:
            log.warning("sweep failed: %s", exc)
        await asyncio.sleep(interval)


class DispatchingRunner(Runner):
    """The runner of a serve in distributed mode: it runs nothing itself. A start puts the task on
    the queue; stop and switches are asked of the owner through the database; ``resume_all`` is
    the sweeper."""

    def __init__(
        self, db: Database, settings: Settings, *, build_spec: Callable[[str], Awaitable[PipelineSpec]],
        executor: Executor,
    ) -> None:
        super().__init__(db, build_spec=build_spec, executor=executor,
                         interval=settings.status_interval_seconds, stop_grace=settings.stop_grace_seconds)
        self.settings = settings
        self.dispatcher = Dispatcher(settings)
        self._sweeper: asyncio.Task[None] | None = None

    def start(
        self, task_id: str, *, first_log: LogLine | None = None, generation: int | None = None
    ) -> None:
        self.spawn(self._dispatch(task_id, first_log))

    async def _dispatch(self, task_id: str, first_log: LogLine | None) -> None:
        try:
            if first_log is not None:
                await self.db.call(repo.add_logs, task_id=task_id, entries=[first_log.row()])
            # A fresh run (not the resume of an interrupted one): resume_mode manual does not apply.
            await self.db.call(leases.request_control, task_id=task_id, request="start")
        except Exception:
            log.exception("cannot record the start of task %s", task_id)
        await self.dispatcher.enqueue(task_id)

    async def stop(self, task_id: str, *, wait: bool) -> None:
        if await self._stop_unowned(task_id):
            return
        await self.db.call(leases.request_control, task_id=task_id, request="stop")
        if wait:
            await self._wait_owner_gone(task_id, lambda t: t is None or t.status != st.TERMINATING)

    async def _stop_unowned(self, task_id: str) -> bool:
        line = LogLine("INFO", "migration.stop", "migration stopped", [])
        allowed = sorted(st.EXECUTING | {st.TERMINATING})
        return bool(await self.db.call(
            leases.set_status_unowned, task_id=task_id, allowed=allowed, status=st.TERMINATED,
            entries=[line.row()],
        ))

    async def _wait_owner_gone(self, task_id: str, done: Callable[[Any], bool]) -> None:
        """Until ``done(task)``, or the owner is gone (its lease ended: then stop it here)."""
        deadline = time.monotonic() + self.stop_grace + 2 * self.settings.lease_seconds + 5
        while time.monotonic() < deadline:
            task = await self.db.call(repo.get_task, project_id=None, task_id=task_id)
            if done(task):
                return
            owner = await self.db.call(leases.live_owner, task_id=task_id)
            if owner is None and await self._stop_unowned(task_id):
                return
            await asyncio.sleep(0.2)

    async def ensure_stopped(self, task_id: str) -> None:
        if await self.db.call(leases.live_owner, task_id=task_id) is None:
            return
        await self.db.call(leases.request_control, task_id=task_id, request="stop")
        deadline = time.monotonic() + self.stop_grace + 2 * self.settings.lease_seconds + 5
        while time.monotonic() < deadline:
            if await self.db.call(leases.live_owner, task_id=task_id) is None:
                return
            await asyncio.sleep(0.2)

    def can_switch(self, task_id: str) -> bool:
        return False  # nothing runs here: switchable() asks the database

    async def switchable(self, task_id: str) -> bool:
        owner = await self.db.call(leases.live_owner, task_id=task_id)
        return self.switcher is not None and owner is not None

    async def submit_switch(self, task_id: str, request: SwitchRequest) -> bool:
        return bool(await self.db.call(leases.request_switch, task_id=task_id, request=switch_json(request)))

    async def resume_all(self) -> None:
        """Nothing to resume here: the sweeper (here and in every worker) re-queues orphans."""
        self._sweeper = asyncio.create_task(
            sweep_forever(self.db, self.dispatcher, self.settings.heartbeat_seconds), name="sweeper"
        )

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await super().close()
        self.dispatcher.close()


def switch_json(request: SwitchRequest) -> dict[str, Any]:
    return {"operation": request.operation, "fronts": [dict(f) for f in request.fronts],
            "project_id": request.project_id}


def switch_of(raw: dict[str, Any]) -> SwitchRequest:
    from cachemigrate.service.switching import SwitchRequest

    return SwitchRequest(str(raw["operation"]), tuple(raw["fronts"]), str(raw["project_id"]))
