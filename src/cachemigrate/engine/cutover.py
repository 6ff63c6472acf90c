"""Zero-loss cutover of a running incremental migration, and the rollback (the same, reversed).

A migration old → new runs in its incremental phase (``LiveMigration``: a pipeline one can stop
and start again). Clients reach the servers through fronts (engine/fronts/). ``cutover`` moves
the writes to ``new`` without losing or doubling one:

0. Before anything is paused: both servers are standalone; every front forwards to old or new
   (the ones at old move to new, the ones at new to old) and is up; ``new`` keeps a replication
   backlog (``ensure_backlog``, engine/stream_position.py); the migration is within ``max_lag_bytes`` of old.
1. Pause: ``MULTI / CLIENT PAUSE <ms> WRITE / INFO replication / EXEC`` on old: the pause and
   old's ``master_repl_offset`` at that instant in one step (no write can fall between). Plain
   ``CLIENT PAUSE`` (all commands) where WRITE is not known: Redis < 6.2.
2. The migration is stopped at that offset exactly (``Pipeline.stop_at``): everything up to it
   is applied to new, nothing after it exists while old is paused. The keys the verification
   gate could not settle because they kept changing (``check_keys``: engine/verify.py's
   "in flight") are compared now, when both sides hold the same history exactly: one that
   differs aborts the cutover. (Before Redis 6.2 the pause stops reads too: they are not
   compared, and a warning says so.)
3. The position new's replication stream starts from: ``MULTI / SET <marker> / INFO replication
   / EXEC`` on new, db 0. The SET writes the migration's exactly-once marker (the position just
   reached, engine/exactly_once.py) and makes sure the stream is in db 0 at the offset INFO
   reports, whichever way the server propagates a transaction: Redis 7 sends MULTI..EXEC after
   INFO ran (the offset is before it; the SET follows, with a SELECT if needed), Redis 6 sends
   each command as it runs (the offset is after the SET, in db 0). A PSYNC at that replid and
   offset + 1 is then tried once (and dropped): new must answer +CONTINUE.
4. The fronts are switched, those at old first; old sessions are closed, so every client
   reconnects, to new.
5. The reverse sync new → old starts from step 3's position: a second migration that begins
   with PSYNC <replid> <offset+1>, so no full copy; old gets every write made on new from now on.
   Its checkpoint is saved to ``reverse_store`` first.
6. ``CLIENT UNPAUSE`` on old (the reverse sync's writes were waiting for it too).

The pause is bounded: when steps 1-3 are not done ``max_pause`` seconds after the pause began,
or any of them fails, the cutover aborts: the migration is started again from its checkpoint
(the exact offset of step 2), old is unpaused, and CutoverError says why; no front moved. The
server's own pause timeout is ``max_pause + pause_guard``: if this process dies mid-cutover old
unpauses by itself (clients were never moved unless step 4 ran). Once a front has moved (step
4) there is no going back: a later front that fails is reported (``CutoverReport.failed``) and
the cutover completes. Rollback is ``cutover`` of the reverse sync with the same fronts.

Why a backlog must exist first: engine/stream_position.py. Redis < 6.2 has no CLIENT UNPAUSE: there
the pause always lasts ``max_pause`` and steps 1-3 must end within its first three quarters.

Not covered: cluster sources or targets (one pause and one stream per shard would be needed),
db mapping and filter rules (refused: the reverse sync does not invert them). Clients that
write to a server directly, not through a front, are not moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore
from cachemigrate.engine.exactly_once import MARKER_STATE, REMOVED, Marker, marker_key
from cachemigrate.engine.fronts.base import Front, resolve
from cachemigrate.engine.live import LiveMigration, reverse_spec
from cachemigrate.engine.readers.source_offsets import read_info
from cachemigrate.engine.spec import DbMode
from cachemigrate.engine.status import EventSink, LogLevel, Phase
from cachemigrate.engine.stream_position import CONTROL, continues, ensure_backlog, position, transaction
from cachemigrate.errors import CacheMigrateError, ConfigError, CutoverError, FrontError
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import probe

POLL = 0.02  # seconds between looks at a running pipeline (the catch-up, the reverse start)


@dataclass(frozen=True, slots=True)
class CutoverOptions:
    max_pause: float = 2.0  # seconds old's writes may stay paused before the cutover aborts
    pause_guard: float = 10.0  # old's own pause timeout is max_pause + this (see the docstring)
    catch_up_timeout: float = 300.0  # seconds to wait for the migration to be within max_lag_bytes
    max_lag_bytes: int = 64 << 10  # how far behind old the migration may be when the pause begins
    backlog_timeout: float = 30.0  # seconds for ensure_backlog
    reverse_timeout: float = 30.0  # seconds for the reverse sync to report its +CONTINUE


@dataclass(frozen=True, slots=True)
class CutoverReport:
    old: str  # the server that took the writes before (host:port)
    new: str  # the one that takes them now
    paused_ms: float  # from the pause to the unpause (Redis < 6.2: to the switch), seen from here
    stopped_at: Checkpoint  # where the migration old → new ended (old's offset at the pause)
    reverse_from: Checkpoint  # where the reverse sync new → old starts
    moved: tuple[str, ...]  # "front: a -> b" for each front switched
    failed: tuple[str, ...] = ()  # fronts that could not be switched after the first one moved
    # (step, ms after the pause began) for: paused, stopped, marked, probed, switched,
    # reverse started, unpaused: where the pause went
    timeline: tuple[tuple[str, float], ...] = ()


async def cutover(
    forward: LiveMigration,
    fronts: Sequence[Front],
    *,
    reverse_store: CheckpointStore,
    options: CutoverOptions | None = None,
    events: EventSink | None = None,
    stop: asyncio.Event | None = None,
    check_keys: Sequence[tuple[int, int, bytes]] = (),
) -> tuple[LiveMigration, CutoverReport]:
    """Move the writes from ``forward``'s source to its target; see the module docstring.

    Returns the reverse sync (running) and what was done. CutoverError when the cutover did not
    happen (``forward`` runs again then), FrontError / ConfigError from the checks before it.
    ``stop`` set while it waits for the catch-up ends it there (CutoverError, nothing paused);
    once writes are paused it runs to its end (bounded by ``max_pause``). ``check_keys``:
    (source db, target db, key) compared exactly inside the pause (step 2).
    """
    return await _Cutover(forward, fronts, reverse_store, options or CutoverOptions(),
                          events or forward.events, stop or asyncio.Event(), tuple(check_keys)).run()


class _Abort(Exception):
    """Inside the pause: undo, unpause, and raise CutoverError with this message."""


class _Cutover:
    def __init__(self, forward: LiveMigration, fronts: Sequence[Front], reverse_store: CheckpointStore,
                 options: CutoverOptions, events: EventSink, stop: asyncio.Event,
                 check_keys: tuple[tuple[int, int, bytes], ...] = ()) -> None:
        self.forward = forward
        self.check_keys = check_keys
        self.stop = stop
        self.fronts = fronts
        self.reverse_store = reverse_store
        self.options = options
        self.events = events
        self.old = forward.source
        self.new = forward.spec.target
        self.arrow = f"{self.old.address} -> {self.new.address}"
        self.started = 0.0
        self.timeline: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        self.timeline.append((step, (time.monotonic() - self.started) * 1000))

    def log(self, level: LogLevel, message: str) -> None:
        self.events.log(level, f"cutover {self.arrow}: {message}")

    async def run(self) -> tuple[LiveMigration, CutoverReport]:
        if self.forward.spec.options.db_mode is not DbMode.KEEP:
            raise ConfigError("a cutover needs every db migrated as it is (no --db / --fold-dbs): "
                              "the reverse sync does not map dbs back")
        if self.forward.spec.options.filters:
            raise ConfigError("a cutover needs every key migrated as it is (no filter rules): the "
                              "target does not hold what the source's clients read, and the reverse "
                              "sync does not invert renames or restore what was left out")
        old_conn = await Connection.open(self.old, db=0, name=CONTROL)
        try:
            new_conn = await Connection.open(self.new, db=0, name=CONTROL)
            try:
                return await self._run(old_conn, new_conn)
            finally:
                with contextlib.suppress(CacheMigrateError, OSError):
                    await new_conn.close()
        finally:
            with contextlib.suppress(CacheMigrateError, OSError):
                await old_conn.close()

    async def _run(self, old_conn: Connection, new_conn: Connection) -> tuple[LiveMigration, CutoverReport]:
        o = self.options
        old_info, new_info = await probe(old_conn), await probe(new_conn)
        for info in (old_info, new_info):
            if info.cluster:
                raise ConfigError(f"{info.address} is a cluster: a cutover moves standalone servers only")
        plan = await self._plan()
        if await ensure_backlog(self.new, o.backlog_timeout):
            self.log(LogLevel.INFO, f"{self.new.address} keeps a replication backlog from now on "
                     "(a replica attached once), so the reverse sync can continue its stream")
        await self._caught_up(old_conn)

        write_only = old_info.version >= (6, 2)
        if write_only:
            pause_ms, limit = round((o.max_pause + o.pause_guard) * 1000), o.max_pause
        else:  # no CLIENT UNPAUSE: the pause runs its course; keep a quarter of it as margin
            pause_ms, limit = round(o.max_pause * 1000), o.max_pause * 0.75
        started = self.started = time.monotonic()
        deadline = started + limit
        replid, offset = await self._pause(old_conn, pause_ms, write_only)
        self.mark("paused")
        try:
            stopped, reverse_from = await self._quiesce(new_conn, replid, offset, deadline, write_only)
        except (_Abort, CacheMigrateError, OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            await self._put_back(old_conn, write_only)
            self.log(LogLevel.ERROR, f"aborted, nothing moved, writes resumed on {self.old.address}: {why}")
            raise CutoverError(f"cutover {self.arrow} aborted (nothing moved, the migration goes on): "
                               f"{why}") from None
        try:
            moved, failed = await self._switch(plan)
            self.mark("switched")
        except FrontError as exc:
            await self._put_back(old_conn, write_only)
            raise CutoverError(f"cutover {self.arrow} aborted (nothing moved, the migration goes on): "
                               f"{exc}") from None
        reverse = await self._start_reverse(reverse_from)
        self.mark("reverse started")
        if write_only:
            try:
                await old_conn.execute("CLIENT", "UNPAUSE", timeout=10)
            except (CacheMigrateError, OSError, TimeoutError) as exc:
                self.log(LogLevel.ERROR, f"CLIENT UNPAUSE failed ({exc}): {self.old.address} unpauses by "
                         f"itself {o.max_pause + o.pause_guard:g} s after the pause began")
            self.mark("unpaused")
        else:
            self.timeline.append(("the pause runs out (no CLIENT UNPAUSE before Redis 6.2)", pause_ms))
        paused_ms = (time.monotonic() - started) * 1000
        self.log(LogLevel.INFO, f"done: writes paused {paused_ms:.1f} ms; {'; '.join(moved)}; reverse "
                 f"sync {self.new.address} -> {self.old.address} from offset {reverse_from.offset}")
        await self._reverse_continued(reverse)
        report = CutoverReport(self.old.address, self.new.address, paused_ms, stopped, reverse_from,
                               tuple(moved), tuple(failed), tuple(self.timeline))
        return reverse, report

    # ---- before the pause ----------------------------------------------------------------------

    async def _plan(self) -> list[tuple[Front, Endpoint, Endpoint]]:
        """Each front with the server it is at and the one it goes to, the ones at old first."""
        to_new: list[tuple[Front, Endpoint, Endpoint]] = []
        to_old: list[tuple[Front, Endpoint, Endpoint]] = []
        names = [f.name for f in self.fronts]
        if len(set(names)) != len(names):
            raise ConfigError(f"a front is named twice: {', '.join(names)}")
        for front in self.fronts:
            health = await front.health()
            if not health.up:
                raise CutoverError(f"{front.name} is not up ({health.detail}): fix it first")
            at = await front.backend()
            if await _same_server(at, self.old):
                to_new.append((front, self.old, self.new))
            elif await _same_server(at, self.new):
                to_old.append((front, self.new, self.old))
            else:
                raise CutoverError(f"{front.name} forwards to {at.address}: neither {self.old.address} "
                                   f"nor {self.new.address}")
        if not to_new:
            raise CutoverError(f"no front forwards to {self.old.address}: the clients would not move")
        return to_new + to_old

    async def _caught_up(self, old_conn: Connection) -> None:
        """Until the migration is in its stream within max_lag_bytes of old."""
        o = self.options
        deadline = time.monotonic() + o.catch_up_timeout
        lag: int | None = None
        while True:
            pos = self.forward.running().applied_position()
            if pos is not None and pos.phase == "incremental":
                info = await read_info(old_conn, "replication")
                if info.get("master_replid") == pos.replid:
                    lag = int(info.get("master_repl_offset", "0")) - pos.offset
                    if lag <= o.max_lag_bytes:
                        return
            if self.stop.is_set():
                raise CutoverError(f"cutover {self.arrow} stopped before the pause: nothing moved")
            if time.monotonic() > deadline:
                behind = "not in its incremental phase" if lag is None else f"{lag} bytes behind"
                raise CutoverError(f"the migration {self.arrow} is still {behind} after "
                                   f"{o.catch_up_timeout:g} s: nothing was paused")
            await asyncio.sleep(POLL)

    # ---- inside the pause --------------------------------------------------------------------

    async def _pause(self, conn: Connection, ms: int, write_only: bool) -> tuple[str, int]:
        """Pause old and read its position in the same transaction."""
        pause: list[Any] = ["CLIENT", "PAUSE", ms, *(["WRITE"] if write_only else [])]
        info = await transaction(conn, pause, ["INFO", "replication"])
        return position(info[1], self.old)

    async def _quiesce(
        self, new_conn: Connection, replid: str, offset: int, deadline: float, reads: bool
    ) -> tuple[Checkpoint, Checkpoint]:
        """Steps 2 and 3: the migration stopped at ``offset``; where new's stream starts."""
        forward = self.forward
        forward.running().stop_at(replid, offset)
        task = forward.task
        assert task is not None
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await asyncio.shield(task)
        except TimeoutError:
            raise _Abort(f"{self.new.address} had not applied {self.old.address}'s offset {offset} "
                         f"within {self.options.max_pause:g} s") from None
        self.mark("stopped")
        stopped = forward.pipeline.applied_position() if forward.pipeline is not None else None
        if stopped is None or stopped.replid != replid or stopped.offset < offset:
            raise _Abort(f"the migration stopped at {stopped}, not at {replid} {offset}")
        if self.check_keys:
            await self._check_in_flight(deadline, reads)
        marker = Marker(stopped.replid, stopped.offset, int(stopped.extra.get("db", 0))).encode()
        info = await transaction(new_conn, ["SET", marker_key(self.old.address), marker],
                                  ["INFO", "replication"])
        new_replid, new_offset = position(info[1], self.new)
        self.mark("marked")
        # No marker of the reverse sync exists yet in old: its first write makes it (so that a
        # resume does not take old for emptied, nor an older marker for where old is).
        reverse_from = Checkpoint(self.new.address, new_replid, new_offset, phase="incremental",
                                  extra={"db": 0, MARKER_STATE: REMOVED})
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                continued = await continues(self.new, new_replid, new_offset)
        except TimeoutError:
            raise _Abort(f"{self.new.address} did not answer a PSYNC within the pause") from None
        if not continued:
            raise _Abort(f"{self.new.address} cannot continue its replication stream from offset "
                         f"{new_offset} (it answered FULLRESYNC)")
        self.mark("probed")
        if time.monotonic() > deadline:
            raise _Abort(f"the pause would last longer than {self.options.max_pause:g} s")
        return stopped, reverse_from

    async def _check_in_flight(self, deadline: float, reads: bool) -> None:
        """The keys the gate left open, compared now that both sides hold the same history."""
        n = len(self.check_keys)
        if not reads:
            self.log(LogLevel.WARNING, f"{n} keys written during the verification are not compared: "
                     f"{self.old.address} pauses reads too before Redis 6.2")
            return
        from cachemigrate.engine.verify import check_exactly

        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                differ = await check_exactly(self.old, self.new, self.check_keys)
        except TimeoutError:
            raise _Abort(f"comparing the {n} keys written during the verification took longer than "
                         "the pause may last") from None
        if differ:
            sample = ", ".join(f"db {db} {key.decode('utf-8', 'backslashreplace')!r} ({why})"
                               for db, key, why in differ[:5])
            raise _Abort(f"{len(differ)} of the {n} keys written during the verification differ "
                         f"with the writes paused: {sample}")
        self.mark("in-flight keys equal")
        self.log(LogLevel.INFO, f"the {n} keys written during the verification are equal at the pause")

    async def _put_back(self, old_conn: Connection, write_only: bool) -> None:
        """The migration running again from its checkpoint, old unpaused."""
        forward = self.forward
        if forward.pipeline is not None and forward.task is not None:
            forward.pipeline.clear_stop_at()
            if forward.stop_event.is_set():  # it reached the offset after all: let it end
                with contextlib.suppress(CacheMigrateError, OSError):
                    await forward.task
            if forward.task.done():
                forward.start()
        if write_only:
            await old_conn.execute("CLIENT", "UNPAUSE", timeout=10)

    async def _switch(self, plan: list[tuple[Front, Endpoint, Endpoint]]) -> tuple[list[str], list[str]]:
        moved: list[str] = []
        failed: list[str] = []
        for front, before, server in plan:
            try:
                await front.switch_to(server)
            except FrontError as exc:
                if not moved:
                    with contextlib.suppress(FrontError):  # it may have half moved
                        await front.switch_to(before)
                    raise
                failed.append(f"{front.name}: {exc}")
                self.log(LogLevel.ERROR, f"{front.name} could not be switched to {server.address} ({exc}); "
                         "the cutover goes on: switch it by hand")
                continue
            moved.append(f"{front.name}: {before.address} -> {server.address}")
        return moved, failed

    async def _start_reverse(self, start: Checkpoint) -> LiveMigration:
        await self.reverse_store.save(start)
        reverse = LiveMigration(reverse_spec(self.forward.spec), events=self.forward.events,
                                store=self.reverse_store)
        reverse.start()
        return reverse

    # ---- after it ------------------------------------------------------------------------------

    async def _reverse_continued(self, reverse: LiveMigration) -> None:
        """Until the reverse sync has its +CONTINUE; a warning (not an error: the cutover is done)
        when it does not come or a full sync came instead."""
        deadline = time.monotonic() + self.options.reverse_timeout
        while time.monotonic() < deadline:
            try:
                snap = reverse.running().snapshot()
            except CacheMigrateError as exc:
                self.log(LogLevel.ERROR, f"the reverse sync failed: {exc}")
                return
            if snap.resumes_fullresync:
                self.log(LogLevel.WARNING, "the reverse sync could not continue the stream: it copies "
                         f"{self.new.address} in full instead")
                return
            if snap.resumes_continue and snap.phase is Phase.INCREMENTAL:
                return
            await asyncio.sleep(POLL)
        self.log(LogLevel.WARNING, "the reverse sync has not connected in "
                 f"{self.options.reverse_timeout:g} s; it keeps trying")


async def _same_server(a: Endpoint, b: Endpoint) -> bool:
    """The same port and an address in common (a front reports IPs, a URL may name a host)."""
    if a.port != b.port:
        return False
    return a.host == b.host or bool(set(await resolve(a.host)) & set(await resolve(b.host)))
