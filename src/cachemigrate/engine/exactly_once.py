"""Exactly-once apply of the replication stream on a standalone target.

A checkpoint is saved about once a second, so a process killed without warning resumes up to a
second behind what the target already applied, and non-idempotent commands (INCR, RPUSH, LPOP,
APPEND...) would be applied twice. So during the incremental phase each batch is applied as ONE
transaction that also records how far it got, in a marker key of the target::

    MULTI
    <the batch's commands, in order; the source's own MULTI/EXEC dropped: the outer
     transaction already keeps its groups atomic>
    SELECT 0 (inserted by the writer when needed)
    SET __cachemigrate:offset:{<source host:port>} "<replid> <offset> <source db>"
    EXEC

The commands and the marker are applied together or not at all, so the marker is the exact
position of the target. On resume the pipeline reads it (``read_marker``) and when it has the
checkpoint's replid, PSYNC continues from the marker (``resume_point``): ahead of the checkpoint
(the last save was cut short) or behind it (the target came back from an older snapshot or AOF,
which holds its marker of that time). The source db is in the marker because the master sends
SELECT only on a change: the stream resumed mid-way must know which db it is in.

A target without the marker of an incremental checkpoint has lost what was migrated (it came
back empty, or was flushed): ``target_lost``; it gets a new full sync. So that an incremental
checkpoint always has its marker, the first idle read of a run (no command since the full sync
ended, or since a resume) writes it alone (``SET``, at the applied position). A marker removed on
purpose (below) is noted in the last checkpoint (extra ``marker: removed``): a later run resumed
from it does not take the target for emptied. A cutover (engine/cutover.py) starts the run in the
new direction from a checkpoint marked the same way: its position was fixed under the pause, and
no marker of it exists yet. A marker behind such a checkpoint is older than it (an earlier run in
the same direction, a switch and a switch back ago, with the same replid): it is not where the
target is, and the run goes on from the checkpoint (its first write replaces that marker).

One transaction is in flight at a time (written, then its replies awaited) so that the position
is known exactly and a discarded transaction is resent before anything after it. The reader keeps
receiving meanwhile, so the next batch simply holds more commands.

EXECABORT (the target refused a command when it was queued: a command or an arity an older
target does not know, OOM, ACL...) discards the whole transaction. The batch is then sent again
without a transaction (the refused command is reported again as a failure) followed by the
marker: that batch is applied at least once, and a warning says so. Runtime errors inside EXEC
(WRONGTYPE...) fail one command each; the standalone writer reports them from the EXEC array.

Offsets: every entry of a transaction goes to the writer with source offset 0, so the writer's
applied offset (a running maximum) never moves on +QUEUED replies or on a discarded EXEC;
``applied_offset`` adds the end of the last transaction known to be committed.

When the marker goes (``remove_marker``): it is a key the source never had, so a finished
migration must not leave it behind. The pipeline deletes it when a run ends by itself (a full-only
run, or the catch-up of a full-only resume, is done) and when a stopped run will not be resumed
(``PipelineOptions.resumable`` False: a CLI run without --checkpoint); the service deletes it
with its task. A stopped run that may be resumed keeps it. Strictly, a clean stop would not need
it: its last checkpoint is saved after the final flush, so it is exactly the marker's position.
But that save is the one thing between a stop and a double apply (a service checkpoint is a
database write; a stop past the grace period is a cancellation, with no final save at all), and
the marker is what makes a resume exact whatever happened to the last save: while a resume is
possible, it stays. The pipeline deletes it only after the last checkpoint save has completed
(periodic saves included: a database save runs in a thread and is not stopped by cancelling it).

Not covered (at least once, as before): cluster targets (one marker per master, routed by a hash
tag of that master, would be needed: the cluster writer does not expose its per-node writers for
this), cluster sources (one stream per shard), the full phase (RESTORE REPLACE: idempotent
anyway). Keys in the target: one marker per source, in db 0; ``compare`` ignores the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.entry import Arg, Command, Entry
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel
from cachemigrate.engine.writers.base import Writer
from cachemigrate.errors import (
    AskError,
    CacheMigrateError,
    ClusterDownError,
    ConnectionLostError,
    LoadingError,
    MovedError,
)
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint

MARKER_PREFIX = b"__cachemigrate:offset:"
MARKER_STATE = "marker"  # checkpoint extra: REMOVED once the run removed its marker
REMOVED = "removed"
_GROUP = (b"multi", b"exec")
_MOVES_KEYS = frozenset((b"flushall", b"flushdb", b"swapdb"))  # commands that may take the marker
RESENDS_LOGGED = 10  # a target that refuses something every time must not flood the log


def marker_key(source: str) -> bytes:
    """The marker of the source ``host:port`` (braces: a cluster hash tag, should one be used)."""
    return MARKER_PREFIX + b"{" + source.encode() + b"}"


@dataclass(frozen=True, slots=True)
class Marker:
    """What the marker key holds: the replication position applied, and the source db there."""

    replid: str
    offset: int
    db: int

    def encode(self) -> bytes:
        return f"{self.replid} {self.offset} {self.db}".encode()

    @classmethod
    def decode(cls, raw: bytes) -> Marker | None:
        try:
            replid, offset, db = raw.decode("ascii").split(" ")
            return cls(replid, int(offset), int(db))
        except (UnicodeDecodeError, ValueError):
            return None


class Positions(Protocol):
    """A reader that can say which checkpoint an (internal) offset stands for (SyncReader)."""

    def position(self, offset: int) -> Checkpoint | None: ...


async def read_marker(target: Endpoint, source: str) -> Marker | None:
    """The marker ``source`` left in ``target`` (None when there is none or it is not ours)."""
    conn = await Connection.open(target, db=0, name="cachemigrate-control")
    try:
        raw = await conn.execute("GET", marker_key(source), timeout=10)
    finally:
        await conn.close()
    return Marker.decode(raw) if isinstance(raw, bytes) else None


async def remove_marker(target: Endpoint, source: str, *, timeout: float = 10) -> bool:
    """Delete the marker ``source`` (``host:port``) left in ``target``; True when there was one.

    A cluster target never holds one (markers are written to standalone targets only): its
    redirection of the key is taken as "none here".
    """
    conn = await Connection.open(target, db=0, name="cachemigrate-control")
    try:
        deleted = await conn.execute("DEL", marker_key(source), timeout=timeout)
    except (MovedError, AskError, ClusterDownError):
        return False
    finally:
        await conn.close()
    return bool(deleted)


def resume_point(start: Checkpoint | None, marker: Marker | None) -> Checkpoint | None:
    """Where to continue: the marker's position when it is in the checkpoint's history, ahead of
    it (the last save was cut short) or behind it (the target came back from an older snapshot or
    AOF: it lost its last writes, and holds exactly what the marker says); else the checkpoint.
    An incremental checkpoint whose marker is gone is ``target_lost`` (the caller decides)."""
    if (
        start is None
        or marker is None
        or start.phase != "incremental"
        or marker.replid != start.replid
        or marker.offset == start.offset
    ):
        return start
    if start.extra.get(MARKER_STATE) == REMOVED and marker.offset < start.offset:
        return start  # left by an earlier run in this direction (a cutover and a rollback ago)
    return Checkpoint(start.source, start.replid, marker.offset, phase="incremental",
                      extra={**start.extra, "db": marker.db})


def target_lost(start: Checkpoint | None, marker: Marker | None) -> bool:
    """Whether a target that should hold the marker of an incremental checkpoint has lost it:
    it came back empty (restarted without its data) or was flushed. A marker removed on purpose
    (``REMOVED``: a run that ended) is not missed."""
    return (
        start is not None
        and start.phase == "incremental"
        and marker is None
        and start.extra.get(MARKER_STATE) != REMOVED
    )


class ExactlyOnceApplier:
    """Applies the incremental batches of a reader as transactions with the marker; see above."""

    def __init__(
        self, writer: Writer, positions: Positions, source: str, events: EventSink, *,
        obsolete: str | None = None,
    ) -> None:
        self.writer = writer
        self.positions = positions
        self.source = source
        self.events = events
        self.key = marker_key(source)
        # The marker of the server this one took over from (engine/failover.py): deleted in the
        # first transaction, with this one's marker written.
        self._obsolete = marker_key(obsolete) if obsolete is not None and obsolete != source else None
        self.committed = 0  # internal offset: end of the last batch known to be applied
        self.transactions = 0
        self.resent = 0  # batches applied at least once after an EXECABORT
        self._aborted = False
        self._marked = False  # the marker has been written in this run

    @property
    def applied_offset(self) -> int:
        return max(self.writer.stats.applied_offset, self.committed)

    @property
    def marked(self) -> bool:
        """Whether this run has written the marker (it is in the target unless flushed)."""
        return self._marked

    def on_failure(self, failure: KeyFailure) -> None:
        """Sees every failure the writer reports (hooked in by the pipeline)."""
        if failure.command == "EXEC" and failure.error.startswith("EXECABORT"):
            self._aborted = True

    async def write(self, batch: Sequence[Entry]) -> None:
        if not batch or _only_pings(batch):
            # An idle stream. The first one of a run writes the marker: an incremental
            # checkpoint then always has one in the target (``target_lost`` relies on it), even
            # when nothing was written on the source since the full sync ended.
            if batch:
                await self.writer.write(batch)
            if not self._marked:
                await self._mark()
            return
        end = max(e.source_offset for e in batch)
        cp = self.positions.position(end)
        if cp is None or cp.phase != "incremental":
            # The full phase (idempotent RESTOREs; a new one flushes the marker away first), a
            # cluster source.
            self._marked = False
            await self.writer.write(batch)
            return
        marker = Marker(cp.replid, cp.offset, int(cp.extra.get("db", 0))).encode()
        commands = [e for e in batch if not _group_edge(e)]
        update = self._marked
        for e in commands:
            e.source_offset = 0
            if update and e.name.lower() in _MOVES_KEYS:
                update = False
        # Once written, the marker is only updated (XX): a target flushed under the migration
        # keeps no marker, which the pipeline notices (and a resume: ``target_lost``). Not after
        # the source's own FLUSHALL, FLUSHDB or SWAPDB, which take the marker with them.
        set_marker: list[Arg] = [b"SET", self.key, marker, *([b"XX"] if update else [])]
        tail = [Command(set_marker, 0, self.key)]
        if self._obsolete is not None:
            tail.append(Command([b"DEL", self._obsolete], 0, self._obsolete))
        self._aborted = False
        await self.writer.write([Command([b"MULTI"], 0), *commands, *tail, Command([b"EXEC"], -1)])
        await self.writer.flush()
        self.transactions += 1
        self._obsolete = None  # gone with this transaction (or with the resend below)
        if self._aborted:
            self._aborted = False
            self.resent += 1
            if self.resent <= RESENDS_LOGGED:
                self.events.log(LogLevel.WARNING, f"{self.source}: the target discarded the transaction "
                                f"up to offset {cp.offset} (EXECABORT): its {len(commands)} commands are "
                                "sent again one by one; this batch is applied at least once")
            elif self.resent == RESENDS_LOGGED + 1:
                self.events.log(LogLevel.WARNING, f"{self.source}: more transactions discarded (EXECABORT) "
                                "and resent; they are applied at least once; not logged any more")
            await self.writer.write([*commands, *tail])
            await self.writer.flush()
        self.committed = max(self.committed, end)
        self._marked = True

    async def _mark(self) -> None:
        """The marker at what the target has applied, once that is a position of the stream."""
        await self.writer.flush()
        applied = self.applied_offset
        cp = self.positions.position(applied)
        if cp is None or cp.phase != "incremental":
            return
        marker = Marker(cp.replid, cp.offset, int(cp.extra.get("db", 0))).encode()
        await self.writer.write([Command([b"SET", self.key, marker], 0, self.key)])
        await self.writer.flush()
        self.committed = max(self.committed, applied)
        self._marked = True


async def resume_from_marker(
    start: Checkpoint | None, target: Endpoint, source: str, events: EventSink
) -> Checkpoint | None:
    """``resume_point`` of the target's marker; a target that lost it gets a new full sync (the
    checkpoint turned "full": the reader empties the target first); a target that refuses the
    read (an ACL) keeps ``start``; one that cannot be reached (or is loading) raises that."""
    if start is None or start.phase != "incremental" or start.source != source:
        return start
    try:
        marker = await read_marker(target, source)
    except (ConnectionLostError, LoadingError, OSError, TimeoutError):
        raise  # the caller waits for the target (resume mode auto) or fails
    except CacheMigrateError as exc:
        events.log(LogLevel.WARNING, f"{source}: cannot read the offset marker in the target ({exc}); "
                   "resuming from the checkpoint: commands after it may be applied twice")
        return start
    if target_lost(start, marker):
        events.log(LogLevel.WARNING, f"{source}: the target {target.display_url()} holds no offset marker: "
                   "it came back empty or was flushed, and lost what was migrated; a new full "
                   "synchronization loads it again")
        return Checkpoint(start.source, start.replid, start.offset, phase="full")
    point = resume_point(start, marker)
    if point is not start and point is not None:
        why = "checkpoint" if point.offset > start.offset else "checkpoint; it lost its last writes"
        events.log(LogLevel.INFO, f"{source}: the target has applied up to offset {point.offset} "
                   f"({why}: {start.offset}); continuing from there")
    return point


def _group_edge(e: Entry) -> bool:
    return type(e) is Command and len(e.argv) == 1 and e.name.lower() in _GROUP


def _only_pings(batch: Sequence[Entry]) -> bool:
    return all(type(e) is Command and len(e.argv) == 1 and e.argv[0] == b"PING" for e in batch)
