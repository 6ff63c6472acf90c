"""The one place where a reader, the transform and a writer are wired together.

``run_pipeline`` runs a migration to its end (files, full sync) or until ``stop`` is set
(incremental), reports a status snapshot about once a second, saves checkpoints, and raises a
``CacheMigrateError`` with a readable message when it gives up (after logging it).

A ``Pipeline`` is one such run; who holds it can also ask where a replication source stands
(``applied_position``) and stop it at an exact replication offset (``stop_at``): the cutover
(engine/cutover.py) does, with the source's writes paused. What a session is made of (the
reader and where it starts, the writer's options, the transforms, the exactly-once applier, the
presence check) is chosen in engine/assembly.py; this module runs the sessions and reports.

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
import time
from collections.abc import Awaitable, Callable
from operator import attrgetter
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
from cachemigrate.engine.dbsize import KeyCount
from cachemigrate.engine.entry import Command
from cachemigrate.engine.flow import Backoff, ReadAhead
from cachemigrate.engine.presence import PresenceCheck
from cachemigrate.engine.readers.base import Reader
from cachemigrate.engine.spec import DbMode, PipelineSpec, ResumeMode, SourceKind
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel, Phase, StatusSnapshot
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers import open_writer
from cachemigrate.engine.writers.base import Writer, WriterStats
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
FAILURES_LOGGED = 100  # failed keys named one by one in the log; the rest are counted
BACKOFF_FIRST = 0.5  # waiting for a lost target: first delay, doubled up to BACKOFF_MAX
BACKOFF_MAX = 30.0
_entry_size = attrgetter("size")  # (a Command of size 0 counts nothing: batches are bounded too)
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
        self.started = time.time()
        self.phase = Phase.CONNECTING
        self.transforms: list[Transformer] = []
        self.reader: Reader | None = None
        self.writer: Writer | None = None
        self.applier: ExactlyOnceApplier | None = None  # incremental phase of a standalone target
        self.presence: PresenceCheck | None = None  # only when the target already had keys
        self.target: TargetInfo | None = None
        self.failures_seen = 0
        self._stop_at: tuple[str, int] | None = None
        self._last_rate = (time.monotonic(), 0, 0)
        self._saving: asyncio.Future[None] | None = None  # the checkpoint save under way
        self._rates = (0.0, 0.0)
        # Target outages: the sessions before the current one, and what the status says meanwhile.
        self.target_reconnects = 0
        self._waiting = ""
        self._pumped = False  # the current session has written a batch
        self._target_flushed = False  # its marker vanished under the current session
        self._carried = WriterStats()
        self._uncarried_writer: Writer | None = None  # this session's, not yet in _carried
        self._uncarried_reader: Reader | None = None
        self._carried_reads = (0, 0, 0)  # keys read, +CONTINUE and FULLRESYNC resumes
        self._counts: list[KeyCount] = []  # source and target dbsize (online sources)

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
                    await asyncio.wait_for(asyncio.gather(*(c.sample() for c in self._counts)), 5)
            for count in self._counts:
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
            self.writer = self._uncarried_writer = await open_writer(
                spec.target, writer_options(spec.options, self._on_failure), info=self.target
            )
        except TARGET_DOWN as exc:
            raise TargetLost(exc) from exc
        target = self.target
        factory = transform_factory(spec.options, target, self.events, self.transforms,
                                    lambda: self.presence is not None)
        self.reader = self._uncarried_reader = await open_reader(spec, target, self.checkpoints, factory,
                                                                 self.events)
        if self.stop.is_set():
            self.reader.stop()  # stopped while connecting: the stop watch has already fired
        self.applier = make_applier(spec, target, self.reader, self.writer, self.events)
        self.presence = make_presence(spec, target)
        self._make_counts()
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
        self.target_reconnects += 1
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
        # Once each: a session that failed before making its own keeps the last ones.
        writer, self._uncarried_writer = self._uncarried_writer, None
        if writer is not None:
            self._carried.add(writer.stats)
        reader, self._uncarried_reader = self._uncarried_reader, None
        if reader is not None:
            r = reader.progress()
            keys, continued, resynced = self._carried_reads
            self._carried_reads = (keys + r.keys_read, continued + r.resumes_continue,
                                   resynced + r.resumes_fullresync)

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
        ahead = ReadAhead(batches, _entry_size)  # the next batches are read while this one is written
        stopping = False
        try:
            while (batch := await ahead.take()) is not None:
                try:
                    await write(batch if presence is None else await presence.filter(batch))
                except TARGET_DOWN as exc:
                    raise TargetLost(exc) from exc
                self._pumped = True
                if self._target_flushed:
                    raise TargetLost(_TargetFlushed(FLUSHED))
                if self._stop_at is not None:
                    self._check_stop_at()
                if stop.is_set() and not stopping:
                    # What was read ahead is written too: a stop at an offset (``stop_at``)
                    # counts what the reader delivered. The stopped reader ends promptly.
                    stopping = True
                    reader.stop()
        finally:
            await ahead.close()
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
        self.failures_seen += 1
        if self.failures_seen <= FAILURES_LOGGED:
            key = failure.key.decode(errors="backslashreplace") if failure.key is not None else "-"
            self.events.log(LogLevel.ERROR, f"db {failure.db} key {key!r}: {failure.command} "
                            f"refused by the target: {failure.error}")
        elif self.failures_seen == FAILURES_LOGGED + 1:
            self.events.log(LogLevel.ERROR, "more keys refused; only the count is kept from here on")

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
        r = self.reader.progress() if self.reader is not None else None
        w = WriterStats()
        w.add(self._carried)  # the sessions before a target outage
        if self._uncarried_writer is not None:
            w.add(self._uncarried_writer.stats)
        keys_read, continued, resynced = self._carried_reads
        if r is not None and self._uncarried_reader is not None:
            keys_read += r.keys_read
            continued += r.resumes_continue
            resynced += r.resumes_fullresync
        phase = self.phase
        if r is not None and phase in (Phase.FULL, Phase.INCREMENTAL):
            phase = r.phase
        by_type: dict[str, int] = {}
        expired = skipped_filter = filtered = 0
        for tf in self.transforms:
            for k, v in tf.keys_by_type.items():
                by_type[k] = by_type.get(k, 0) + v
            expired += tf.expired + tf.walked_expired
            skipped_filter += tf.unsupported_count
            filtered += tf.keys_filtered
        now = time.time()
        if self.writer is not None:
            self._update_rates(w.commands_written, w.bytes_written)
        source_count, target_count = self._counts if self._counts else (None, None)
        return StatusSnapshot(
            phase=phase,
            source_kind=self.reader.source_kind if self.reader is not None else self.spec.source.kind.value,
            started_at=self.started,
            updated_at=now,
            bytes_read=r.bytes_read if r else 0,
            bytes_total=r.bytes_total if r else None,
            keys_read=keys_read,
            keys_written=w.keys_written,
            keys_replaced=self.presence.replaced if self.presence else 0,
            keys_skipped=w.keys_skipped + (self.presence.skipped if self.presence else 0),
            keys_failed=w.keys_failed + skipped_filter,
            keys_expired=expired,
            keys_filtered=filtered + (r.keys_filtered if r else 0),
            commands_written=w.commands_written,
            commands_failed=w.commands_failed,
            bytes_written=w.bytes_written,
            keys_by_type=by_type,
            source_offset=r.source_offset if r else None,
            applied_offset=(
                self._applied_offset() if self.writer and r and r.source_offset is not None else None
            ),
            lag_seconds=r.lag_seconds if r else None,
            caught_up=r.caught_up if r and not self._waiting else False,
            ops_per_sec=self._rates[0],
            kb_per_sec=self._rates[1],
            source_dbsize=source_count.value if source_count else None,
            target_dbsize=target_count.value if target_count else None,
            resumes_continue=continued,
            resumes_fullresync=resynced,
            target_reconnects=self.target_reconnects,
            message=message or self._waiting or (r.message if r else ""),
        )

    def _make_counts(self) -> None:
        """source_dbsize and target_dbsize of an online migration between standalone servers."""
        src = self.spec.source.endpoint
        if self._counts or src is None or self.target is None or self.target.cluster:
            return
        if self.reader is None or self.reader.source_kind == "cluster":
            return
        o = self.spec.options
        covers: Callable[[int], bool] | None = None
        if o.db_mode is DbMode.ONLY:
            only, into = o.db, o.db if o.target_db is None else o.target_db
            source = KeyCount(src, lambda db: db == only)
            covers = into.__eq__ if into is not None else None
        else:
            source = KeyCount(src)
            if o.db_mode is DbMode.FOLD:
                covers = (0).__eq__
        exclude = self.applier.key if self.applier is not None else None
        self._counts = [source, KeyCount(self.spec.target, covers, exclude=exclude)]

    async def _count_loop(self) -> None:
        while True:
            await asyncio.sleep(COUNT_PERIOD)
            applier = self.applier
            marked = applier is not None and applier.marked
            await asyncio.gather(*(count.sample() for count in self._counts))
            # Marked before and after the sample (neither the first marker nor a new full sync's
            # flush raced it), yet not in the target: it was flushed; the pump ends the session.
            if (marked and applier is self.applier and applier is not None and applier.marked
                    and self._counts and self._counts[1].excluded is False):
                self._target_flushed = True

    def _update_rates(self, commands: int, nbytes: int) -> None:
        t, c0, b0 = self._last_rate
        now = time.monotonic()
        if now - t >= 0.5:
            self._rates = ((commands - c0) / (now - t), (nbytes - b0) / 1024 / (now - t))
            self._last_rate = (now, commands, nbytes)


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
