"""The one place where a reader, the transform and a writer are wired together.

``run_pipeline`` runs a migration to its end (files, full sync) or until ``stop`` is set
(incremental), reports a status snapshot about once a second, saves checkpoints, and raises a
``CacheMigrateError`` with a readable message when it gives up (after logging it).

A ``Pipeline`` is one such run; who holds it can also ask where a replication source stands
(``applied_position``) and stop it at an exact replication offset (``stop_at``): the cutover
(engine/cutover.py) does, with the source's writes paused. What a session is made of (the
reader and where it starts, the writer's options, the transforms, the exactly-once applier, the
presence check) is chosen in engine/assembly.py; what its status says across the sessions is
kept in engine/run_status.py; this module runs the sessions.

Target outages. A run is one or more *sessions*: connect to the target, make the reader from the
checkpoint store, pump. When the target goes away under a session (its connection lost, or
LOADING while it restarts), the session ends: its checkpoint is saved (what the target had
acknowledged), reader and writer are closed, their counters carried into the next session's
status. A replication source (SYNC) in resume mode auto then waits for the target: a PING every
``Backoff`` delay (0.5 s doubling to 30 s, a stop ends the wait at once), a log line per attempt,
the status message "waiting for target ..."; once it answers, a new session resumes like a
restarted service: from the checkpoint, moved to the exactly-once marker the target holds
(engine/exactly_once.py ``resume_from_marker``: ahead of the checkpoint, or behind it when the
target came back from an older snapshot), or a new full sync when the target came back without
its marker (empty, flushed). Resume mode manual, and file or SCAN sources, fail with the reason.
A target that cannot be reached when a run starts fails it at once (a wrong address), unless the
run resumes a checkpoint (a service restart): then it is waited for too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from cachemigrate.engine.assembly import (
    TARGET_DOWN,
    TargetLost,
    make_applier,
    make_presence,
    open_reader,
    reason,
    transform_factory,
    writer_options,
)
from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.entry import Command
from cachemigrate.engine.flow import Backoff
from cachemigrate.engine.presence import PresenceCheck
from cachemigrate.engine.readers.base import Reader
from cachemigrate.engine.run_status import RunStatus
from cachemigrate.engine.spec import PipelineSpec, ResumeMode, SourceKind
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel, Phase, StatusSnapshot
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers import open_writer
from cachemigrate.engine.writers.base import Writer
from cachemigrate.errors import (
    AddressNotAllowedError,
    CacheMigrateError,
    MigrationError,
    ResumeError,
)
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo, probe_target

if TYPE_CHECKING:  # imported where used: a file import's start-up does without them
    from cachemigrate.engine.exactly_once import ExactlyOnceApplier
    from cachemigrate.engine.readers.sync import SyncReader

STATUS_PERIOD = 1.0
COUNT_PERIOD = 2.0  # source_dbsize / target_dbsize are read this often
BACKOFF_FIRST = 0.5  # waiting for a lost target: first delay, doubled up to BACKOFF_MAX
BACKOFF_MAX = 30.0
FLUSHED = "the target's offset marker disappeared under the running migration: it was flushed"


class _TargetFlushed(MigrationError):
    """The target's marker vanished under a session (see ``_count_loop``)."""


async def _ping(endpoint: Endpoint) -> None:
    conn = await Connection.open(endpoint, db=0, name="cachemigrate-control")
    try:
        await conn.execute("PING", timeout=10)
    finally:
        await conn.close()


async def run_pipeline(
    spec: PipelineSpec,
    *,
    events: EventSink,
    checkpoints: CheckpointStore | None = None,
    stop: asyncio.Event | None = None,
) -> StatusSnapshot:
    """Run one migration; see the module docstring."""
    return await Pipeline(spec, events, checkpoints, stop or asyncio.Event()).run()


class Pipeline:
    """One run of ``spec``: ``run()`` once; see the module docstring."""

    def __init__(
        self, spec: PipelineSpec, events: EventSink, checkpoints: CheckpointStore | None, stop: asyncio.Event
    ) -> None:
        self.spec = spec
        self.events = events
        # Always a store: a session after a target outage resumes from it.
        self.checkpoints = checkpoints if checkpoints is not None else MemoryCheckpointStore()
        self.stop = stop
        self.status = RunStatus(spec, events)
        self.phase = Phase.CONNECTING
        self.transforms: list[Transformer] = []
        self.reader: Reader | None = None
        self.writer: Writer | None = None
        self.applier: ExactlyOnceApplier | None = None  # incremental phase of a standalone target
        self.presence: PresenceCheck | None = None  # only when the target already had keys
        self.target: TargetInfo | None = None
        self._stop_at: tuple[str, int] | None = None
        self._saving: asyncio.Future[None] | None = None  # the checkpoint save under way
        # Target outages: what the status says meanwhile.
        self._waiting = ""
        self._pumped = False  # the current session has written a batch
        self._target_flushed = False  # its marker vanished under the current session

    # ---- the run -----------------------------------------------------------------------------

    async def run(self) -> StatusSnapshot:
        spec = self.spec
        name = spec.name or spec.source.kind.value
        self.events.log(LogLevel.INFO, f"{name}: connecting to target {spec.target.display_url()}")
        helpers: list[asyncio.Task[None]] = []
        ended = False
        try:
            helpers = [asyncio.create_task(self._report_loop()), asyncio.create_task(self._stop_watch())]
            if spec.source.kind in (SourceKind.SYNC, SourceKind.SCAN):
                helpers.append(asyncio.create_task(self._count_loop()))
            await self._sessions(name)
            ended = True
        except CacheMigrateError as exc:
            self.phase = Phase.FAILED
            self.events.status(self.snapshot(message=str(exc)))
            self.events.log(LogLevel.ERROR, f"{name}: {exc}")
            raise
        except OSError as exc:
            self.phase = Phase.FAILED
            msg = f"{name}: {exc.strerror or type(exc).__name__}"  # strerror: never the file's path
            self.events.status(self.snapshot(message=msg))
            self.events.log(LogLevel.ERROR, msg)
            raise MigrationError(msg) from exc
        finally:
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            await self._close_session()
            if ended and not self.stop.is_set():
                # The final status counts what the servers hold at the end (not after a stop,
                # nor a failure: a cutover's source is paused, a failed server may hang).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(c.sample() for c in self.status.counts)), 5)
            for count in self.status.counts:
                await count.close()
        self.phase = Phase.STOPPED if self.stop.is_set() else Phase.DONE
        if self.applier is not None and (self.phase is Phase.DONE or not spec.options.resumable):
            await self._remove_marker()
        final = self.snapshot()
        self.events.status(final)
        self.events.log(LogLevel.INFO, f"{name}: {final.phase.value}: {final.keys_written} keys written, "
                        f"{final.keys_failed} failed, {final.keys_skipped} skipped in {final.elapsed:.1f} s")
        return final

    async def _sessions(self, name: str) -> None:
        """Sessions until one ends (see "Target outages" in the module docstring)."""
        resuming = self.checkpoints is not None and await self.checkpoints.load() is not None
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        first = True
        while True:
            try:
                await self._session(name, first=first)
                return
            except TargetLost as lost:
                await self._end_session()
                self._may_wait(lost, fresh=self.writer is None and not resuming)
                first = False
                if isinstance(lost.cause, _TargetFlushed):  # it is up: a new session at once
                    self.events.log(LogLevel.WARNING, f"{name}: {FLUSHED}: a new full synchronization "
                                    "loads it again")
                    continue
                if self._pumped:  # a session that wrote: a new outage; else the same one goes on
                    backoff.reset()
                if not await self._wait_for_target(name, str(lost), backoff):
                    return  # stopped while waiting

    async def _session(self, name: str, *, first: bool) -> None:
        """Connect to the target, read the source from the checkpoint (the marker's position on
        a standalone target), pump until the reader ends; a lost target raises TargetLost."""
        spec = self.spec
        try:
            await _ping(spec.target)  # LOADING (a target restarting with its data) waits too
            self.target = await probe_target(spec.target)
            self.writer = self.status.session_writer = await open_writer(
                spec.target, writer_options(spec.options, self._on_failure), info=self.target
            )
        except TARGET_DOWN as exc:
            raise TargetLost(exc) from exc
        target = self.target
        factory = transform_factory(spec.options, target, self.events, self.transforms,
                                    lambda: self.presence is not None)
        self.reader = self.status.session_reader = await open_reader(
            spec, target, self.checkpoints, factory, self.events
        )
        if self.stop.is_set():
            self.reader.stop()  # stopped while connecting: the stop watch has already fired
        self.applier = make_applier(spec, target, self.reader, self.writer, self.events)
        self.presence = make_presence(spec, target)
        self.status.make_counts(target, self.reader, self.applier.key if self.applier is not None else None)
        self.events.log(LogLevel.INFO, f"{name}: target is {self.target.describe()}; "
                        f"reading {self.reader.source_kind}")
        if first and spec.options.flush_target:
            await self._on_target(self.writer.write([Command([b"FLUSHALL"], db=-1)]))
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.FULL
        self._waiting = ""
        self._pumped = False
        self._target_flushed = False
        await self._pump(self.reader, self.writer)
        await self._on_target(self.writer.flush())
        await self._save_checkpoint()

    async def _on_target(self, step: Awaitable[None]) -> None:
        try:
            await step
        except TARGET_DOWN as exc:
            raise TargetLost(exc) from exc

    def _may_wait(self, lost: TargetLost, *, fresh: bool) -> None:
        """Raise unless this run waits for its target to come back: an online source (SYNC) in
        resume mode auto that has reached the target before (in this run, or the checkpoint's)."""
        where = self.spec.target.display_url()
        if fresh or isinstance(lost.cause, AddressNotAllowedError):
            # A wrong address, a target that is down: said at once, as it is. An address the
            # network policy refuses stays refused: waiting for it would retry forever.
            raise lost.cause
        if self.spec.source.kind is not SourceKind.SYNC:
            raise MigrationError(f"the target {where} was lost ({lost}): run the migration again")
        if self.spec.options.resume_mode is ResumeMode.MANUAL:
            raise ResumeError(
                f"the target {where} was lost ({lost}); resume mode is manual: restart the task "
                "(or run the migration again with the same checkpoint) to continue from where it stopped"
            )

    async def _wait_for_target(self, name: str, why: str, backoff: Backoff) -> bool:
        """Until the target answers PING (True), or the run is stopped (False); a log line and a
        status (message "waiting for target ...") per attempt."""
        where = self.spec.target.display_url()
        self.status.target_reconnects += 1
        attempt = 0
        while True:
            attempt += 1
            self._waiting = (f"waiting for target {where} (attempt {attempt}, next in "
                             f"{backoff.delay:g} s): {why}")
            self.events.log(LogLevel.WARNING, f"{name}: target {where} unreachable ({why}); "
                            f"waiting for it: attempt {attempt}, next in {backoff.delay:g} s")
            self.events.status(self.snapshot())
            if await backoff.wait(self.stop):
                return False
            try:
                await _ping(self.spec.target)
            except TARGET_DOWN as exc:
                why = reason(exc)
                continue
            self.events.log(LogLevel.INFO, f"{name}: target {where} is back after {attempt} attempts; "
                            "resuming from the last position it holds")
            return True

    async def _end_session(self) -> None:
        """A lost target: save where it had got to, close the session, keep its counters."""
        with contextlib.suppress(CacheMigrateError, OSError):
            await self._save_checkpoint()
        await self._close_session()
        self.status.carry()

    async def _close_session(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self.presence is not None:
            with contextlib.suppress(CacheMigrateError, OSError):
                await self.presence.close()
        if self.writer is not None:
            with contextlib.suppress(CacheMigrateError, OSError):
                await self.writer.close()

    async def _stop_watch(self) -> None:
        """A stop reaches the reader at once, even while it waits to reconnect to its source."""
        await self.stop.wait()
        if self.reader is not None:
            self.reader.stop()

    async def _pump(self, reader: Reader, writer: Writer) -> None:
        stop = self.stop
        write = self.applier.write if self.applier is not None else writer.write
        presence = self.presence
        batches = reader.batches()
        try:
            async for batch in batches:
                try:
                    await write(batch if presence is None else await presence.filter(batch))
                except TARGET_DOWN as exc:
                    raise TargetLost(exc) from exc
                self._pumped = True
                if self._target_flushed:
                    raise TargetLost(_TargetFlushed(FLUSHED))
                if self._stop_at is not None:
                    self._check_stop_at()
                if stop.is_set():
                    reader.stop()
                    break
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()  # the reader's links close now, not when collected

    # ---- a replication source: where it stands, stopping at an offset ---------------------------

    def _sync_reader(self) -> SyncReader | None:
        from cachemigrate.engine.readers.sync import SyncReader

        return self.reader if isinstance(self.reader, SyncReader) else None

    def applied_position(self) -> Checkpoint | None:
        """The replication position of the source that the target has applied, None until the
        stream is known (or when the source is not one replicated server)."""
        reader = self._sync_reader()
        return reader.position(self._applied_offset()) if reader is not None else None

    def stop_at(self, replid: str, offset: int) -> None:
        """Stop once every entry of the source up to its replication ``offset`` (in history
        ``replid``) has been handed to the writer; the run then ends as a stop does: the writer
        flushed, the checkpoint saved. With the source's writes paused that is exactly
        ``offset`` (plus PINGs): nothing is read past it that the target would miss."""
        self._stop_at = (replid, offset)
        self._check_stop_at()

    def clear_stop_at(self) -> None:
        """Forget ``stop_at`` (a run it has already stopped is not started again)."""
        self._stop_at = None

    def _check_stop_at(self) -> None:
        reader = self._sync_reader()
        if self._stop_at is None or reader is None:
            return
        replid, offset = self._stop_at
        cp = reader.delivered_position()
        if cp is not None and cp.phase == "incremental" and cp.replid == replid and cp.offset >= offset:
            self.stop.set()
            reader.stop()  # a pump waiting for the next batch stops waiting

    # ---- construction ------------------------------------------------------------------------

    def _applied_offset(self) -> int:
        if self.applier is not None:
            return self.applier.applied_offset
        return self.writer.stats.applied_offset if self.writer is not None else 0

    # ---- reporting ---------------------------------------------------------------------------

    def _on_failure(self, failure: KeyFailure) -> None:
        if self.applier is not None:
            self.applier.on_failure(failure)
        self.status.log_failure(failure)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_PERIOD)
            await self._save_checkpoint()
            self.events.status(self.snapshot())

    async def _save_checkpoint(self, **extra: str) -> None:
        """Saves run one at a time, in order, each to its end even when the caller is cancelled
        (a database save runs in a thread, which a cancellation does not stop): a periodic save
        cut short must not land after the last one, which the marker's removal relies on.
        ``extra`` goes into the checkpoint's extra."""
        if self.checkpoints is None or self.reader is None or self.writer is None:
            return
        if self._saving is not None and not self._saving.done():
            await asyncio.wait([self._saving])  # neither raises its error nor cancels it
        cp = self.reader.checkpoint(self._applied_offset())
        if cp is not None and extra:
            cp = dataclasses.replace(cp, extra={**cp.extra, **extra})
        if cp is not None:
            self._saving = saving = asyncio.ensure_future(self.checkpoints.save(cp))
            saving.add_done_callback(_retrieve)  # a save cut short reports nowhere: no warning
            await asyncio.shield(saving)

    async def _remove_marker(self) -> None:
        """The run is over for good (engine/exactly_once.py, "When the marker goes"): once the
        last checkpoint save has completed, the target's marker is deleted. A save that failed,
        or a target that cannot be reached, keeps the marker (a warning says so)."""
        assert self.applier is not None
        from cachemigrate.engine.exactly_once import MARKER_STATE, REMOVED, remove_marker

        try:
            # After any periodic save cut short by the cancellation; it says the marker is gone
            # on purpose, so that a run resumed from it does not take the target for emptied.
            await self._save_checkpoint(**{MARKER_STATE: REMOVED})

            await remove_marker(self.spec.target, self.applier.source)
        except (CacheMigrateError, OSError, TimeoutError) as exc:
            self.events.log(LogLevel.WARNING, f"the offset marker stays in the target "
                            f"({self.applier.key.decode(errors='replace')}): {exc}")

    def snapshot(self, message: str = "") -> StatusSnapshot:
        return self.status.snapshot(
            phase=self.phase, reader=self.reader, writing=self.writer is not None,
            applied_offset=self._applied_offset(), presence=self.presence, transforms=self.transforms,
            waiting=self._waiting, message=message,
        )

    async def _count_loop(self) -> None:
        while True:
            await asyncio.sleep(COUNT_PERIOD)
            applier = self.applier
            marked = applier is not None and applier.marked
            await asyncio.gather(*(count.sample() for count in self.status.counts))
            # Marked before and after the sample (neither the first marker nor a new full sync's
            # flush raced it), yet not in the target: it was flushed; the pump ends the session.
            if (marked and applier is self.applier and applier is not None and applier.marked
                    and self.status.counts and self.status.counts[1].excluded is False):
                self._target_flushed = True


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
