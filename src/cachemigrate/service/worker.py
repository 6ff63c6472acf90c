"""`cachemigrate worker`: one process of the distributed mode (service/distributed.py says how
the parts meet).

The Celery worker consumes the queue in the main thread (solo pool, one message at a time, each
acknowledged on delivery); each message hands a task id to the ``WorkerAgent``, whose asyncio
loop runs in a thread of its own: it claims the task (db/leases.py) and runs it with the same
``Runner`` as `serve` does, its writes fenced by the lease. The agent's heartbeat renews the
leases and reads what the serves ask (stop, exchange-ip, rollback-ip); its watchdog cancels a run
whose lease it could not renew for ``lease_seconds - lease_margin_seconds`` (the database was
unreachable, or another worker claimed it), so the run stops applying before anyone else can
claim it; its sweeper re-queues tasks without a live owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

from cachemigrate.service import states as st
from cachemigrate.service.db import leases, repo
from cachemigrate.service.db.session import Database
from cachemigrate.service.distributed import Dispatcher, celery_app, sweep_forever, switch_of
from cachemigrate.service.runner import Runner
from cachemigrate.service.settings import Settings
from cachemigrate.service.tasklogs import LogLine

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerAgent:
    def __init__(self, settings: Settings, db: Database, runner: Runner, worker_id: str) -> None:
        self.settings = settings
        self.db = db
        self.runner = runner
        self.worker_id = worker_id
        runner.worker_id = worker_id
        self.dispatcher = Dispatcher(settings)
        self.lease = settings.lease_seconds
        self.margin = settings.lease_margin_seconds()
        # Task -> monotonic time until which its lease is surely ours (renewal sent + lease - margin).
        self.safe_until: dict[str, float] = {}
        self.stops_asked: set[tuple[str, int]] = set()  # (task, generation) told to stop
        self._claiming = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- the asyncio side --------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._heartbeat_forever(), name="heartbeat"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(sweep_forever(self.db, self.dispatcher, self.settings.heartbeat_seconds),
                                name="sweeper"),
        ]
        log.info("worker %s: %d slots, lease %.1f s, heartbeat %.1f s, stops applying %.1f s before "
                 "a lease it could not renew ends", self.worker_id, self.settings.worker_slots, self.lease,
                 self.settings.heartbeat_seconds, self.margin)

    async def close(self) -> None:
        """Stop: the runs are cancelled (their status stays) and their leases released, so another
        worker resumes them at once."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.runner.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._beat(stopped=True), self.lease)
        self.dispatcher.close()

    def units(self) -> list[str]:
        return sorted(self.runner.runs)

    async def offer(self, task_id: str) -> str:
        """A message said the task may need running: claim it and run it, when there is room."""
        if task_id in self.runner.runs:
            return "mine"
        if len(self.runner.runs) + self._claiming >= self.settings.worker_slots:
            return "full"  # not claimed: the sweeper offers it again, to a worker with room
        self._claiming += 1
        try:
            sent = time.monotonic()
            claim = await self.db.call(leases.claim, task_id=task_id, worker_id=self.worker_id,
                                       lease_seconds=self.lease)
            if claim is None:
                return "taken"
            self.safe_until[task_id] = sent + self.lease - self.margin
            await self._begin(claim)
            return "claimed"
        finally:
            self._claiming -= 1

    async def _fenced(self, claim: leases.Claim, fn: Any, **kw: Any) -> Any:
        return await self.db.call(leases.fenced, task_id=claim.task_id, worker_id=self.worker_id,
                                  generation=claim.generation, write=fn, kw=kw)

    async def _release(self, claim: leases.Claim) -> None:
        self.safe_until.pop(claim.task_id, None)
        await self.db.call(leases.release, task_id=claim.task_id, worker_id=self.worker_id,
                           generation=claim.generation)

    async def _begin(self, claim: leases.Claim) -> None:
        task_id = claim.task_id
        log.info("worker %s claimed task %s (generation %d, status %s)", self.worker_id, task_id,
                 claim.generation, claim.status)
        if claim.status == st.CREATING:  # nothing to run: the record only (Runner.provision)
            await self._fenced(
                claim, repo.set_status_if, task_id=task_id, allowed=[st.CREATING], status=st.RUNNING
            )
            await self._release(claim)
            return
        if claim.status == st.TERMINATING:  # a stop asked while nobody ran it
            await self._fenced(
                claim, repo.set_status_and_log, task_id=task_id, allowed=[st.TERMINATING],
                status=st.TERMINATED, control_request=None,
                entries=[LogLine("INFO", "migration.stop", "migration stopped", []).row()],
            )
            await self._release(claim)
            return
        task = await self.db.call(repo.get_task, project_id=None, task_id=task_id)
        if task is None:
            await self._release(claim)
            return
        first: LogLine | None
        if claim.control_request == "start":  # a fresh run (create, set_online, restart)
            await self._fenced(claim, leases.take_requests, task_id=task_id)
            first = None
        elif (task.resume_mode == "manual" and task.status != st.TERMINATED
              and task.task_status not in st.SWITCHING):
            msg = "the worker that ran the task stopped while it was running and resume_mode is manual"
            await self._fenced(
                claim, repo.set_status_and_log, task_id=task_id, allowed=sorted(st.ACTIVE), status=st.FAILED,
                entries=[LogLine("ERROR", "migration.error.interrupted", msg, []).row()], error_message=msg,
            )
            await self._release(claim)
            return
        else:
            what = "the reverse sync" if task.status == st.TERMINATED else "the migration"
            first = LogLine("INFO", "migration.resume",
                            f"resuming {what} on worker {self.worker_id} (its previous run ended)", [])
        self.runner.start(task_id, first_log=first, generation=claim.generation)

    async def _beat(self, *, stopped: bool = False) -> None:
        await self.db.call(
            leases.worker_beat, worker_id=self.worker_id, slots=self.settings.worker_slots,
            units=self.units(),
            keys_moved=self.runner.keys_moved, bytes_moved=self.runner.bytes_moved, stopped=stopped,
        )

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                # Bounded: a database that does not answer must not hold the heartbeat (the
                # watchdog stops the runs meanwhile).
                await asyncio.wait_for(self._heartbeat(), self.lease)
            except Exception as exc:
                log.warning("worker %s: heartbeat failed: %s", self.worker_id, exc or type(exc).__name__)

    async def _heartbeat(self) -> None:
        for task_id, run in list(self.runner.runs.items()):
            if run.fence is None or run.lost:
                continue
            sent = time.monotonic()
            if await self.db.call(leases.renew, task_id=task_id, worker_id=self.worker_id,
                                  generation=run.fence.generation, lease_seconds=self.lease):
                self.safe_until[task_id] = sent + self.lease - self.margin
            else:
                log.warning("worker %s: the lease of task %s is another's now", self.worker_id, task_id)
                self.runner.lose(task_id)
        for task_id in list(self.safe_until):
            if task_id not in self.runner.runs:
                self.safe_until.pop(task_id, None)
        live = {(t, r.fence.generation) for t, r in self.runner.runs.items() if r.fence is not None}
        self.stops_asked &= live
        await self._beat()
        asked = await self.db.call(leases.requests_for, worker_id=self.worker_id)
        for task_id, generation, control, switch in asked:
            owned = self.runner.runs.get(task_id)
            if owned is None or owned.fence is None or owned.fence.generation != generation:
                continue
            if control == "stop" and (task_id, generation) not in self.stops_asked:
                self.stops_asked.add((task_id, generation))
                log.info("worker %s: stop of task %s asked", self.worker_id, task_id)
                await self.runner.stop(task_id, wait=False)
            if switch is not None:
                await self.db.call(leases.fenced, task_id=task_id, worker_id=self.worker_id,
                                   generation=generation, write=leases.take_switch, kw={"task_id": task_id})
                await self._switch(task_id, switch)

    async def _switch(self, task_id: str, raw: dict[str, Any]) -> None:
        from cachemigrate.service.switching import EXCHANGE

        request = switch_of(raw)
        if self.runner.request_switch(task_id, request):
            return
        # As TaskService._request_switch does when the run cannot take it: nothing moved.
        exchange = request.operation == EXCHANGE
        during = st.EXCHANGING if exchange else st.ROLLBACKING
        status = st.INCRMIGEATING if exchange else st.TERMINATED
        operation = "exchange-ip" if exchange else "rollback-ip"
        await self.db.call(
            repo.set_switch_state, task_id=task_id, statuses=[status], task_statuses=[during],
            entry=LogLine("ERROR", "migration.error.state", f"{operation} failed: the migration "
                          "stopped meanwhile; nothing moved", []).row(),
            task_status=st.EXCHANGE_FAILED if exchange else st.ROLLBACK_FAILED,
        )

    async def _watchdog(self) -> None:
        """A run whose lease could not be renewed in time stops applying now, before the lease can
        end (its writes would be refused anyway; its target writes must stop too)."""
        step = min(0.2, self.settings.heartbeat_seconds / 4)
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            for task_id, until in list(self.safe_until.items()):
                run = self.runner.runs.get(task_id)
                if run is None or run.lost or now <= until:
                    continue
                self.safe_until.pop(task_id, None)
                log.warning(
                    "worker %s: STOPPED APPLYING task %s at %.3f: its lease was not renewed in time; it "
                    "ends in %.1f s at the earliest", self.worker_id, task_id, time.time(), self.margin,
                )
                self.runner.lose(task_id)

    # --- the Celery side (the main thread) ------------------------------------------------------

    def offer_from_thread(self, task_id: str) -> str:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(self.offer(task_id), self.loop)
        try:
            return future.result(timeout=max(30.0, self.lease))
        except Exception as exc:
            why = exc or type(exc).__name__
            log.warning("worker %s: task %s not taken: %s", self.worker_id, task_id, why)
            return "error"


def run_worker(settings: Settings, *, log_level: str = "INFO") -> None:
    """Run `cachemigrate worker` until SIGTERM/SIGINT (Celery's warm shutdown), then release."""
    from cachemigrate.service.app import build_runner

    settings.check_distributed()
    worker_id = settings.worker_id or default_worker_id()
    runner, db = build_runner(settings)
    agent = WorkerAgent(settings, db, runner, worker_id)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="agent", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(agent.start(), loop).result(60)
    app = celery_app(settings)

    @app.task(name="cachemigrate.run_unit", ignore_result=True, acks_late=False)  # type: ignore[untyped-decorator]
    def run_unit(task_id: str) -> str:
        outcome = agent.offer_from_thread(task_id)
        log.info("worker %s: task %s: %s", worker_id, task_id, outcome)
        return outcome

    try:
        worker = app.Worker(
            pool="solo", concurrency=1, queues=[settings.broker_queue], prefetch_multiplier=1,
            without_mingle=True, without_gossip=True, without_heartbeat=True, loglevel=log_level,
            hostname=f"cachemigrate-{os.getpid()}@{socket.gethostname()}", optimization="fair",
        )
        worker.start()
    finally:
        asyncio.run_coroutine_threadsafe(agent.close(), loop).result(settings.stop_grace_seconds + 30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        db.dispose()
