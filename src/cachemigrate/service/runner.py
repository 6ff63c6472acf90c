"""Runs migration tasks as asyncio tasks and persists what they report.

Status, stats, logs and checkpoints go to the database (never only memory), so after a restart
``resume_all`` picks up what was running. The engine is reached through ``Executor`` so another
executor (remote workers sharing the database) can replace the in-process one.

With the in-process engine (``live=True``) an online incremental task runs as a
``LiveMigration`` (engine/cutover.py) the task's run holds, so that exchange-ip and rollback-ip
(service/switching.py) can stop it at an exact offset and run the reverse sync in its place,
inside the same run. Which way a run goes is where the task's checkpoint's source is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore
from cachemigrate.engine.spec import PipelineSpec, SourceKind
from cachemigrate.engine.status import EventSink, LogLevel, Phase, StatusSnapshot
from cachemigrate.errors import CacheMigrateError
from cachemigrate.service import states as st
from cachemigrate.service.db import leases, repo
from cachemigrate.service.db.session import Database
from cachemigrate.service.tasklogs import LogLine, error_code_of

if TYPE_CHECKING:
    from cachemigrate.engine.live import LiveMigration
    from cachemigrate.service.switching import Switcher, SwitchRequest

log = logging.getLogger(__name__)


class Executor(Protocol):
    async def __call__(
        self,
        spec: PipelineSpec,
        *,
        events: EventSink,
        checkpoints: CheckpointStore | None,
        stop: asyncio.Event | None,
    ) -> StatusSnapshot: ...


async def engine_executor(
    spec: PipelineSpec, *, events: EventSink, checkpoints: CheckpointStore | None, stop: asyncio.Event | None
) -> StatusSnapshot:
    """The in-process executor: ``cachemigrate.engine.pipeline.run_pipeline``."""
    from cachemigrate.engine.pipeline import run_pipeline  # late: the engine loads when a task runs

    return await run_pipeline(spec, events=events, checkpoints=checkpoints, stop=stop)


@dataclass(frozen=True, slots=True)
class Fence:
    """A run under a lease (distributed mode, db/leases.py): its writes carry the generation and
    are refused once another worker claimed the task; ``lost`` is called when one is."""

    worker_id: str
    generation: int
    lost: Callable[[], None]


class DbCheckpointStore:
    """CheckpointStore over the task_checkpoints table (fenced under a lease)."""

    def __init__(self, db: Database, task_id: str, fence: Fence | None = None) -> None:
        self.db = db
        self.task_id = task_id
        self.fence = fence

    async def load(self) -> Checkpoint | None:
        text = await self.db.call(repo.load_checkpoint, task_id=self.task_id)
        return None if text is None else Checkpoint.from_json(text)

    async def save(self, checkpoint: Checkpoint) -> None:
        kw = {"task_id": self.task_id, "data": checkpoint.to_json()}
        if self.fence is None:
            await self.db.call(repo.save_checkpoint, **kw)
            return
        try:
            await self.db.call_abandoning(
                leases.fenced, task_id=self.task_id, worker_id=self.fence.worker_id,
                generation=self.fence.generation, write=repo.save_checkpoint, kw=kw,
            )
        except leases.LeaseLost:
            self.fence.lost()
            raise


class _Sink:
    """EventSink of one run: keeps the last snapshot and queues log lines (never blocks)."""

    def __init__(self) -> None:
        self.last: StatusSnapshot | None = None
        self.pending: list[LogLine] = []

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot

    def log(self, level: LogLevel, message: str) -> None:
        self.pending.append(LogLine.from_engine(level, message))

    def take(self) -> list[LogLine]:
        out, self.pending = self.pending, []
        return out


class _Run:
    def __init__(self, task_id: str, fence: Fence | None = None) -> None:
        self.task_id = task_id
        self.fence = fence
        # The lease was lost (another worker may run the task now): end at once, write nothing.
        self.lost = False
        self.stop = asyncio.Event()
        self.sink = _Sink()
        self.user_stop = False
        self.counted = (0, 0)  # keys and bytes written already added to the runner's totals
        self.task: asyncio.Task[None] | None = None
        # Set once the pipeline has ended; a start() from then on runs the task again afterwards.
        self.finishing = False
        self.again: list[LogLine | None] = []
        # A live migration (Runner.live): the one running now, which way, a switch asked for.
        self.live: LiveMigration | None = None
        self.reverse = False
        self.switch: SwitchRequest | None = None
        self.wake = asyncio.Event()


class Runner:
    def __init__(
        self,
        db: Database,
        *,
        build_spec: Callable[[str], Awaitable[PipelineSpec]],
        executor: Executor,
        interval: float = 1.0,
        stop_grace: float = 10.0,
        live: bool = False,
    ) -> None:
        self.db = db
        self.live = live  # online incremental tasks as LiveMigrations (the in-process engine)
        self.switcher: Switcher | None = None  # set by the app (service/switching.py)
        self._build_spec = build_spec
        self.executor = executor
        self.interval = interval
        self.stop_grace = stop_grace
        self.runs: dict[str, _Run] = {}
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        # Distributed mode: the worker whose leases the runs hold (service/distributed.py).
        self.worker_id: str | None = None
        # Process-wide totals for /metrics (counters: they restart at 0 with the process).
        self.keys_moved = 0
        self.bytes_moved = 0

    # --- control ---------------------------------------------------------------------------------

    def start(self, task_id: str, *, first_log: LogLine | None = None, generation: int | None = None) -> None:
        """Run the task (``generation``: under that lease of ``worker_id``, fenced)."""
        existing = self.runs.get(task_id)
        if existing is not None:
            if existing.finishing and generation is None:  # its end is being recorded: start anew right after
                existing.again = [first_log]
            return
        fence = None
        if generation is not None:
            assert self.worker_id is not None
            fence = Fence(self.worker_id, generation, lambda: self.lose(task_id))
        run = _Run(task_id, fence)
        if first_log is not None:
            run.sink.pending.append(first_log)
        self.runs[task_id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"migration-{task_id}")

    def is_running(self, task_id: str) -> bool:
        return task_id in self.runs

    def lose(self, task_id: str) -> None:
        """The run's lease is gone: cancel it now, without its grace and without writing."""
        run = self.runs.get(task_id)
        if run is not None and not run.lost:
            run.lost = True
            log.warning("task %s: lease lost, the run is cancelled (it writes nothing more)", task_id)
            if run.task is not None:
                run.task.cancel()

    async def ensure_stopped(self, task_id: str) -> None:
        """The task's run (the reverse sync of an exchanged task) stopped, if one runs."""
        if self.is_running(task_id):
            await self.stop(task_id, wait=True)

    def can_switch(self, task_id: str) -> bool:
        """Whether the task's run holds a live migration a switch can move."""
        run = self.runs.get(task_id)
        return run is not None and run.live is not None and not run.finishing and self.switcher is not None

    def request_switch(self, task_id: str, request: SwitchRequest) -> bool:
        """Hand a checked exchange-ip / rollback-ip to the task's run; False when it cannot take it."""
        run = self.runs.get(task_id)
        if run is None or not self.can_switch(task_id) or run.switch is not None or run.stop.is_set():
            return False
        run.switch = request
        run.wake.set()
        return True

    async def switchable(self, task_id: str) -> bool:
        """``can_switch``, asked where the run is (the database, in distributed mode)."""
        return self.can_switch(task_id)

    async def submit_switch(self, task_id: str, request: SwitchRequest) -> bool:
        """``request_switch``, handed to wherever the run is."""
        return self.request_switch(task_id, request)

    def snapshot(self, task_id: str) -> StatusSnapshot | None:
        run = self.runs.get(task_id)
        return None if run is None else run.sink.last

    async def stop(self, task_id: str, *, wait: bool) -> None:
        """Ask a run to stop; the run itself moves TERMINATING -> TERMINATED."""
        run = self.runs.get(task_id)
        if run is None:
            # Nothing executes here (e.g. marked active by a crashed process): finish it now.
            await self._finish_stop(task_id)
            return
        run.user_stop = True
        run.stop.set()
        if wait and run.task is not None:
            await asyncio.shield(run.task)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Keep a reference to a fire-and-forget coroutine until it ends."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def provision(self, task_id: str, job_id: str) -> None:
        """CREATING -> RUNNING: nothing to create for a self-hosted migrator but the record."""
        await self.db.call(repo.set_status_if, task_id=task_id, allowed=[st.CREATING], status=st.RUNNING)
        await self.db.call(repo.finish_job, job_id=job_id, ok=True)

    async def resume_all(self) -> None:
        """After a restart: continue (resume_mode auto) or fail (manual) what was running."""
        _, tasks = await self.db.call(
            repo.list_tasks, project_id=None, statuses=sorted(st.ACTIVE), limit=100000
        )
        for task in tasks:
            if task.status == st.CREATING:
                await self.db.call(
                    repo.set_status_if, task_id=task.id, allowed=[st.CREATING], status=st.RUNNING
                )
            elif task.status == st.TERMINATING:
                await self._finish_stop(task.id)
            elif task.task_status in st.SWITCHING or task.resume_mode != "manual":
                self.start(
                    task.id,
                    first_log=LogLine(
                        "INFO", "migration.resume", "service restarted: resuming the migration", []
                    ),
                )
            elif task.resume_mode == "manual":
                msg = "the service restarted while the task was running and resume_mode is manual"
                await self._fail(task.id, msg, "migration.error.interrupted")
        # Exchanged: the reverse sync is the task's run (status TERMINATED, spec §9.5).
        switched = sorted(st.EXCHANGED | st.SWITCHING)
        for task in await self.db.call(repo.switched_tasks, task_statuses=switched):
            if task.status == st.TERMINATED:
                self.start(task.id, first_log=LogLine(
                    "INFO", "migration.resume", "service restarted: resuming the reverse sync", []))

    async def close(self) -> None:
        """Service shutdown: cancel runs but keep their status so ``resume_all`` continues them."""
        self._closing = True
        for run in list(self.runs.values()):
            if run.task is not None:
                run.task.cancel()
        for run in list(self.runs.values()):
            if run.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- one run ---------------------------------------------------------------------------------

    async def _execute(self, run: _Run) -> None:
        monitor = asyncio.create_task(self._monitor(run))
        outcome: tuple[str, str | None, LogLine | None]
        try:
            outcome = await self._run_pipeline(run)
        except asyncio.CancelledError:
            outcome = ("cancelled", None, None)
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        run.finishing = True
        try:
            if not run.lost:
                await self._flush(run)
                await self._conclude(run, *outcome)
        except leases.LeaseLost:
            run.lost = True
            log.warning("task %s: lease lost before its end was recorded", run.task_id)
        except Exception:
            log.exception("cannot record the end of task %s", run.task_id)
        finally:
            if run.fence is not None and not run.lost:
                with contextlib.suppress(Exception):  # unreachable: the lease ends by itself
                    await self.db.call(leases.release, task_id=run.task_id, worker_id=run.fence.worker_id,
                                       generation=run.fence.generation)
            self.runs.pop(run.task_id, None)
            if run.again and not self._closing:
                self.start(run.task_id, first_log=run.again[0])

    async def _call(self, run: _Run | None, fn: Callable[..., Any], **kw: Any) -> Any:
        """``db.call(fn, **kw)``; fenced by the run's lease when it has one (LeaseLost: refused)."""
        if run is None or run.fence is None:
            return await self.db.call(fn, **kw)
        return await self.db.call_abandoning(
            leases.fenced, task_id=run.task_id, worker_id=run.fence.worker_id,
            generation=run.fence.generation,
            write=fn, kw=kw,
        )

    async def _run_pipeline(self, run: _Run) -> tuple[str, str | None, LogLine | None]:
        try:
            spec = await self._build_spec(run.task_id)
            run.sink.pending.append(
                LogLine(
                    "INFO",
                    "migration.full.start",
                    f"migration started: {spec.source.kind} -> {spec.target.address}",
                    [spec.target.address],
                )
            )
            store = DbCheckpointStore(self.db, run.task_id, run.fence)
            if self.live and spec.source.kind is SourceKind.SYNC and spec.options.incremental:
                return await self._run_live(run, spec, store)
            runner = asyncio.ensure_future(
                self.executor(spec, events=run.sink, checkpoints=store, stop=run.stop)
            )
            stopper = asyncio.ensure_future(run.stop.wait())
            try:
                done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # the service stops, or the lease is lost: end it now
                stopper.cancel()
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner
                raise
            if runner not in done:
                # Stop requested: give the pipeline its grace period, then cancel it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(runner), self.stop_grace)
                if not runner.done():
                    runner.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await runner
                    return ("stopped", None, None)
            stopper.cancel()
            final = runner.result()
            run.sink.last = final
            return ("done", None, None)
        except leases.LeaseLost:
            run.lost = True
            return ("lost", None, None)
        except CacheMigrateError as exc:
            message = str(exc) or type(exc).__name__
            return ("failed", message, LogLine("ERROR", error_code_of(exc), message, []))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("task %s crashed", run.task_id)
            # The tenant's line names the kind only: the text of an exception that is not ours may
            # carry the server's paths (the operator's log above has all of it).
            message = f"internal error ({type(exc).__name__}); the service log has the details"
            return ("failed", message, LogLine("ERROR", "migration.error.internal", message, []))

    async def _run_live(
        self, run: _Run, spec: PipelineSpec, store: DbCheckpointStore
    ) -> tuple[str, str | None, LogLine | None]:
        """A live migration, in the direction its checkpoint says, until it ends or is stopped;
        a switch asked for meanwhile runs here (Switcher.switch) and leaves the run with the
        migration that goes on (the reverse one, or the same one again)."""
        from cachemigrate.engine.live import LiveMigration, reverse_spec

        assert spec.source.endpoint is not None
        start = await store.load()
        run.reverse = start is not None and start.source == spec.target.address
        if self.switcher is not None:
            task = await self.db.call(repo.get_task, project_id=None, task_id=run.task_id)
            if task is not None:
                await self.switcher.settle(task, run.reverse)
        if run.reverse:
            run.sink.log(LogLevel.INFO, f"the writes go to {spec.target.address}: running the reverse sync "
                         f"{spec.target.address} -> {spec.source.endpoint.address} (exchange-ip done)")
        live = run.live = LiveMigration(reverse_spec(spec) if run.reverse else spec, events=run.sink,
                                        store=store)
        live.start()
        stopper = asyncio.ensure_future(run.stop.wait())
        try:
            while True:
                assert live.task is not None
                waker = asyncio.ensure_future(run.wake.wait())
                await asyncio.wait({live.task, stopper, waker}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if run.stop.is_set():
                    return await self._stop_live(live)
                if run.wake.is_set():
                    run.wake.clear()
                    request, run.switch = run.switch, None
                    if request is not None and self.switcher is not None:
                        live = run.live = await self._switch(run, live, store, request)
                    continue
                assert live.task is not None
                final = live.task.result()  # a failure raises (CacheMigrateError)
                run.sink.last = final
                return ("done", None, None)
        finally:
            stopper.cancel()
            current = run.live or live  # (a switch cut short by the service's stop may have moved on)
            if current.task is not None and not current.task.done():  # cancelled: the service stops
                current.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, CacheMigrateError, OSError):
                    await current.task
            run.live = None

    async def _switch(
        self, run: _Run, live: LiveMigration, store: DbCheckpointStore, request: SwitchRequest
    ) -> LiveMigration:
        """The switch runs to its end even when the service stops meanwhile: its pause is bounded
        and what it leaves must be recorded (the stop just asks it to give up before the pause)."""
        assert self.switcher is not None
        job = asyncio.ensure_future(
            self.switcher.switch(run.task_id, live, store, request, run.sink, run.stop)
        )
        try:
            after = await asyncio.shield(job)
        except asyncio.CancelledError:
            run.stop.set()
            with contextlib.suppress(Exception):
                run.live = await job
            raise
        if after is not live:
            run.reverse = not run.reverse
        return after

    async def _stop_live(self, live: LiveMigration) -> tuple[str, str | None, LogLine | None]:
        live.stop_event.set()
        assert live.task is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(live.task), self.stop_grace)
        if not live.task.done():
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live.task
            return ("stopped", None, None)
        live.task.result()
        return ("done", None, None)

    async def _conclude(self, run: _Run, kind: str, message: str | None, line: LogLine | None) -> None:
        if kind == "cancelled" and self._closing:
            return  # status stays active: resume_all continues it at the next start
        if run.reverse:
            # Exchanged (status TERMINATED): the reverse sync's end is told, the status stays.
            if kind == "failed":
                await self._call(run, repo.update_task, task_id=run.task_id, error_message=message)
                await self._call(run, repo.add_logs, task_id=run.task_id, entries=[
                    LogLine("ERROR", line.code if line else "migration.error",
                            f"the reverse sync stopped: {message}", []).row()])
            else:
                await self._call(run, repo.add_logs, task_id=run.task_id, entries=[
                    LogLine("INFO", "migration.stop", "the reverse sync stopped", []).row()])
            return
        if run.user_stop or kind in ("stopped", "cancelled"):
            await self._finish_stop(run.task_id, run)
        elif kind == "failed":
            await self._fail(run.task_id, message or "failed", line.code if line else "migration.error", run)
        else:
            await self._set_status(
                run.task_id, sorted(st.EXECUTING), st.SUCCESS,
                LogLine("INFO", "migration.full.done", "migration finished", []), error_message=None, run=run,
            )

    async def _finish_stop(self, task_id: str, run: _Run | None = None) -> None:
        allowed = sorted(st.EXECUTING | {st.TERMINATING})
        line = LogLine("INFO", "migration.stop", "migration stopped", [])
        await self._set_status(task_id, allowed, st.TERMINATED, line, control_request=None, run=run)

    async def _fail(self, task_id: str, message: str, code: str, run: _Run | None = None) -> None:
        await self._set_status(
            task_id, sorted(st.ACTIVE), st.FAILED, LogLine("ERROR", code, message, []), error_message=message,
            run=run,
        )

    async def _set_status(
        self, task_id: str, allowed: list[str], status: str, line: LogLine, *, run: _Run | None = None,
        **fields: Any,
    ) -> None:
        """Compare-and-set the status with its log line in one transaction: whoever reads the new
        status also finds the line that says why (a FAILED task without its error was seen)."""
        await self._call(
            run, repo.set_status_and_log, task_id=task_id, allowed=allowed, status=status,
            entries=[line.row()], **fields,
        )

    async def _monitor(self, run: _Run) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._flush(run)
            except leases.LeaseLost:
                self.lose(run.task_id)
            except Exception:
                log.exception("cannot persist the status of task %s", run.task_id)

    async def _flush(self, run: _Run) -> None:
        lines = run.sink.take()
        snap = run.sink.last
        if snap is not None and snap.phase == Phase.INCREMENTAL:
            # The status and the lines that say why in one transaction: whoever sees INCRMIGEATING
            # finds "incremental synchronization started" in the log too.
            moved = await self._call(
                run, repo.set_status_and_log, task_id=run.task_id, allowed=[st.FULLMIGRATING],
                status=st.INCRMIGEATING, entries=[
                    *(ln.row() for ln in lines),
                    LogLine("INFO", "migration.full.done", "full synchronization finished", []).row(),
                    LogLine("INFO", "migration.incr.start", "incremental synchronization started", []).row(),
                ],
            )
            if moved:
                lines = []  # written with the status
        elif snap is not None and snap.phase == Phase.FULL:
            # A new full sync (the backlog lost our offset, the target came back empty): spec §5.4.
            moved = await self._call(
                run, repo.set_status_and_log, task_id=run.task_id, allowed=[st.INCRMIGEATING],
                status=st.FULLMIGRATING, entries=[
                    *(ln.row() for ln in lines),
                    LogLine("WARN", "migration.full.again", "a new full synchronization started", []).row(),
                ],
            )
            if moved:
                lines = []
        if lines:
            await self._call(run, repo.add_logs, task_id=run.task_id, entries=[ln.row() for ln in lines])
        if snap is not None:
            keys, nbytes = run.counted
            self.keys_moved += max(0, snap.keys_written - keys)
            self.bytes_moved += max(0, snap.bytes_written - nbytes)
            run.counted = (max(keys, snap.keys_written), max(nbytes, snap.bytes_written))
            stats = {k: v for k, v in asdict(snap).items() if k != "keys_by_type"}
            stats["offset_lag_bytes"] = snap.offset_lag_bytes
            await self._call(run, repo.update_task, task_id=run.task_id, stats=stats)
