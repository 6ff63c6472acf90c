"""Writer for one standalone target: one connection, pipelined batches, replies counted in bulk.

Each ``write`` packs its entries into batches of about ``batch_bytes`` (one socket write each),
inserting a SELECT only where the db changes. Replies are drained from the hiredis reader in the
connection's ``data_received``: a normal reply costs one ``gets()`` and a class check; only error
replies and arrays (EXEC) are looked at. Reply ``n`` of a batch belongs to entry ``n`` minus the
SELECTs we inserted before it, so no per-entry bookkeeping object is made. A ``PackedRun`` entry
carries many commands (the C walker's RESTORE runs, the replication stream's runs): a batch holding
such entries keeps where each entry's replies start, and a failed command's name and key are read
back from the run's wire (inside EXEC's array too).

A ``Piece`` is part of one command streamed in pieces (a big key's RESTORE, ``engine/streamed.py``):
its first piece charges the in-flight budget the whole command's size, and the batch holding its
last piece (which ends there: nothing after it may wait for budget while it is unanswered) gives
it back when the reply is in. Between its pieces nothing else is sent (no SELECT either: they
are in one db).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter

from cachemigrate.engine.commands import command_key
from cachemigrate.engine.entry import Command, Entry, PackedRun, Piece, Routable
from cachemigrate.engine.flow import ByteBudget
from cachemigrate.engine.status import KeyFailure
from cachemigrate.engine.writers.base import FailureLog, WriterOptions, WriterStats
from cachemigrate.errors import ConnectionLostError, MigrationError
from cachemigrate.protocol.commands import LARGE_ARG, Buffer, pack_argv, pack_chunks
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.resp import NEED_DATA, ErrorReply, ReplyReader, reply_reader

RedirectHandler = Callable[[Routable, str], bool]
"""Cluster hook: gets (entry, error text) for MOVED/ASK/TRYAGAIN/CLUSTERDOWN; True: handled."""

_REDIRECTS = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
_FATAL = ("OOM ",)  # refusals that stop the writer: maxmemory reached with noeviction
_RUN = 256  # entries packed per pass of map()
_get_db = attrgetter("db")
_get_size = attrgetter("size")
_get_tag = attrgetter("tag")
_get_wire = attrgetter("wire")
_get_count = attrgetter("count")


@dataclass(slots=True, eq=False, kw_only=True)
class _Batch:
    entries: Sequence[Entry]
    lo: int  # entries[lo:hi] were sent in this batch
    hi: int
    selects: list[int] | None  # reply positions of the SELECTs we inserted (ascending)
    expected: int  # replies this batch will get
    nbytes: int  # budget given back once its replies are in
    tagged: int
    commands: int  # commands of ours (replies but the SELECTs)
    starts: list[int] | None  # entries with count > 1: the command index each entry starts at
    arrays: int  # EXECs among its commands: array replies (no +OK counting until they are in)
    received: int = 0
    failed: int = 0  # failed or handed to the redirect handler: not written
    tagged_bad: int = 0


class StandaloneWriter:
    """Writes entries to one server over ONE connection (SELECT per entry db, on change only)."""

    def __init__(
        self,
        endpoint: Endpoint,
        options: WriterOptions | None = None,
        *,
        on_redirect: RedirectHandler | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.options = options or WriterOptions()
        self._on_redirect = on_redirect
        self._stats = WriterStats()
        self._failures = FailureLog(kept=self.options.failures_kept)
        self._budget = ByteBudget(self.options.max_bytes_in_flight)
        self._arrays = 0  # EXECs sent whose batch is not complete
        # Several batches in flight at once, even under a small budget.
        opts = self.options
        self._batch_limit = min(opts.batch_bytes, max(64 << 10, opts.max_bytes_in_flight // 4))
        self._batches: deque[_Batch] = deque()
        self._prev: _Batch | None = None  # last completed batch: EXEC arrays may reach into it
        self._idle = asyncio.Event()
        self._idle.set()
        self._conn: Connection | None = None
        self._db = 0
        self._error: BaseException | None = None
        self._open = 0  # the charge of a command whose pieces are being sent (0: none)

    def __repr__(self) -> str:
        return f"<StandaloneWriter {self.endpoint.display_url()}>"

    @property
    def stats(self) -> WriterStats:
        return self._stats

    @property
    def failures(self) -> list[KeyFailure]:
        return self._failures.items

    @property
    def applied_offset(self) -> int:
        return self._stats.applied_offset

    @property
    def pending(self) -> int:
        """Batches sent whose replies are not all in."""
        return len(self._batches)

    async def start(self) -> None:
        conn = await Connection.open(
            self.endpoint, name=self.options.client_name, accelerated=self.options.accelerated
        )
        self._conn = conn
        self._db = conn.db
        conn.set_write_buffer(max(4 * self.options.batch_bytes, 8 << 20))
        conn.set_consumer(self._consume, self._lost, self._count_ok)

    async def write(self, entries: Sequence[Entry]) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("StandaloneWriter.write() before start()")
        n = len(entries)
        i = 0
        while i < n:
            if self._error is not None:
                raise self._error
            batch, chunks, i, charge, sent = self._pack(entries, i)
            if charge:
                await self._budget.acquire(charge)
            if self._error is not None:
                raise self._error
            if batch.arrays:
                self._arrays += batch.arrays
                conn.count_oks = False
            conn.send_chunks(chunks)
            self._batches.append(batch)
            self._idle.clear()
            self._stats.bytes_written += sent
            if conn.write_buffer_size:
                # The socket is full and asyncio only sends from the event loop: let it run
                # between batches, or the server starves while we pack the next ones.
                await asyncio.sleep(0)
        await conn.drain()

    async def flush(self) -> None:
        while self._batches and self._error is None:
            if self._open and all(b.received == b.expected for b in self._batches):
                # Stopped inside a streamed command: it will never be answered (the connection
                # closes with it); everything before it is.
                for b in self._batches:
                    self._complete(b)
                self._batches.clear()
                break
            await self._idle.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    # -- packing -----------------------------------------------------------------------------

    def _pack(self, entries: Sequence[Entry], i: int) -> tuple[_Batch, list[Buffer], int, int, int]:
        """(the batch, its chunks, where the next starts, budget to acquire, bytes sent)."""
        if self._open and type(entries[i]) is not Piece:
            raise MigrationError("a command was sent inside a streamed RESTORE's pieces")
        limit = self._batch_limit
        chunks: list[Buffer] = []
        parts: list[bytes] = []
        selects: list[int] = []
        db = self._db
        same_db = {db, -1}
        nbytes = 0
        charge = release = 0  # Pieces: budget charged beside / given back beside nbytes
        ncmd = 0  # commands packed so far (entries may carry several): where a SELECT's reply falls
        arrays = 0
        n = len(entries)
        j = i
        ended = False  # by the last piece of a streamed command
        while j < n and nbytes < limit and not ended:
            run = entries[j : j + _RUN]
            if set(map(_get_db, run)) <= same_db and max(map(_get_size, run)) <= LARGE_ARG:
                # The common case in one pass without per-entry Python code of ours: same db,
                # no large value.
                # Entries that come packed (Packed, PackedRun: the RESTORE fast path) are sent as
                # they are; a Command's wire is None.
                packed = list(map(_get_wire, run))
                if None in packed:
                    packed = [pack_argv(e.argv) if type(e) is Command else e.wire for e in run]
                    arrays += sum(map(_is_exec, run))
                nbytes += sum(map(len, packed))
                ncmd += sum(map(_get_count, run))
                j += len(run)
                if max(map(len, packed)) <= LARGE_ARG:
                    parts += packed
                    continue
                # A large value whose entry did not say its size: packed once, but not copied
                # again into the batch.
                for data in packed:
                    if len(data) > LARGE_ARG:
                        chunks.append(b"".join(parts))
                        chunks.append(data)
                        parts = []
                    else:
                        parts.append(data)
                continue
            for e in run:
                j += 1
                if e.db != db and e.db >= 0:
                    db = e.db
                    same_db = {db, -1}
                    sel = pack_argv((b"SELECT", b"%d" % db))
                    selects.append(ncmd + len(selects))
                    parts.append(sel)
                    nbytes += len(sel)
                if type(e) is Piece:
                    # Multi-piece commands have every piece above LARGE_ARG (engine/streamed.py):
                    # the fast pass above never takes one.
                    wire = e.wire
                    chunks.append(b"".join(parts))
                    chunks.append(wire)
                    parts = []
                    nbytes += len(wire)
                    charge -= len(wire)
                    release -= len(wire)
                    if e.charge:
                        charge += e.charge
                        self._open = e.charge
                    ncmd += e.count
                    if e.count:
                        release += self._open
                        self._open = 0
                        ended = True  # nothing after it may wait for budget while it is in flight
                        break
                    continue
                if type(e) is not Command:
                    wire = e.wire
                    if len(wire) > LARGE_ARG:
                        chunks.append(b"".join(parts))
                        chunks.append(wire)
                        parts = []
                    else:
                        parts.append(wire)
                    nbytes += len(wire)
                elif e.size > LARGE_ARG:
                    big = pack_chunks(e.argv)
                    chunks.append(b"".join(parts))
                    chunks.extend(big)
                    parts = []
                    nbytes += sum(len(c) for c in big)
                else:
                    data = pack_argv(e.argv)
                    parts.append(data)
                    nbytes += len(data)
                    arrays += _is_exec(e)
                ncmd += e.count
                if nbytes >= limit:
                    break
        chunks.append(b"".join(parts))
        self._db = db
        # Our own list of the batch's entries: the caller may reuse or clear its list.
        own = list(entries[i:j])
        counts = list(map(_get_count, own))
        commands = sum(counts)
        starts: list[int] | None = None
        if commands == len(own):
            tagged = sum(map(bool, map(_get_tag, own)))
        else:
            tagged = sum(c for e, c in zip(own, counts, strict=True) if e.tag)
            starts = [0, *accumulate(counts)][:-1]
        batch = _Batch(entries=own, lo=0, hi=j - i, selects=selects or None,
                       expected=commands + len(selects), nbytes=nbytes + release, tagged=tagged,
                       commands=commands, starts=starts, arrays=arrays)
        return batch, chunks, j, nbytes + charge, nbytes

    # -- replies -----------------------------------------------------------------------------

    def _consume(self, reader: ReplyReader) -> None:
        gets = reader.gets
        batches = self._batches
        while batches:
            b = batches[0]
            pos = b.received
            expected = b.expected
            while pos < expected:
                r = gets()
                if r is NEED_DATA:
                    break
                cls = r.__class__
                if cls is ErrorReply or cls is list:
                    self._special(b, pos, r)
                pos += 1
            b.received = pos
            if pos < expected:
                if pos:
                    self._applied_up_to(b, pos - 1)
                return
            batches.popleft()
            self._complete(b)
        self._idle.set()

    def _count_ok(self, n: int) -> None:
        """``n`` replies arrived, all ``+OK``: advance the batches without looking at entries."""
        batches = self._batches
        while batches:
            b = batches[0]
            take = min(n, b.expected - b.received)
            if not take and b.received < b.expected:
                return  # all n counted (a batch of a streamed command's pieces expects none)
            b.received += take
            n -= take
            if b.received < b.expected:
                self._applied_up_to(b, b.received - 1)
                return
            batches.popleft()
            self._complete(b)
        self._idle.set()

    def _complete(self, b: _Batch) -> None:
        st = self._stats
        st.commands_written += b.commands - b.failed
        st.keys_written += b.tagged - b.tagged_bad
        if self._error is None:  # after a fatal refusal nothing counts as applied any more
            last = b.entries[b.hi - 1].source_offset
            st.applied_offset = max(st.applied_offset, last)
        self._prev = b
        self._budget.release(b.nbytes)
        if b.arrays:
            self._arrays -= b.arrays
            if not self._arrays and self._conn is not None:
                self._conn.count_oks = True

    def _applied_up_to(self, b: _Batch, pos: int) -> None:
        """Reply ``pos`` of ``b`` is in: its entry's source offset is applied if it was the last."""
        if self._error is not None:
            return
        e, sub = self._locate(b, pos)
        if e is not None and sub == e.count - 1 and e.source_offset > self._stats.applied_offset:
            self._stats.applied_offset = e.source_offset

    def _locate(self, b: _Batch, pos: int) -> tuple[Entry | None, int]:
        """The entry reply ``pos`` of batch ``b`` answers (None: a SELECT we inserted), and which
        of its commands."""
        if pos < 0:
            prev = self._prev
            return (None, 0) if prev is None else self._locate(prev, pos + prev.expected)
        if b.selects:
            k = bisect_left(b.selects, pos)
            if k < len(b.selects) and b.selects[k] == pos:
                return None, 0
            pos -= k
        if b.starts is None:
            return b.entries[b.lo + pos], 0
        k = bisect_right(b.starts, pos) - 1
        return b.entries[b.lo + k], pos - b.starts[k]

    def _special(self, b: _Batch, pos: int, reply: object) -> None:
        entry, sub = self._locate(b, pos)
        if isinstance(reply, list):
            if entry is not None and entry.name.upper() == b"EXEC":
                # EXEC's array answers the queued commands: replies pos-len .. pos-1.
                for k, item in enumerate(reply):
                    if isinstance(item, ErrorReply):
                        inner, sub = self._locate(b, pos - len(reply) + k)
                        self._fail(b, inner, item.message, inner=True, sub=sub)
            return
        assert isinstance(reply, ErrorReply)
        self._fail(b, entry, reply.message, inner=False, sub=sub)

    def _fail(self, b: _Batch, entry: Entry | None, message: str, *, inner: bool, sub: int = 0) -> None:
        if entry is None:
            # A SELECT we inserted was refused: later entries would land in the wrong db.
            self._record(KeyFailure(-1, None, "SELECT", message))
            self._error = MigrationError(f"{self.endpoint.display_url()} refused SELECT: {message}")
            self._budget.fail(self._error)
            return
        if not inner:
            b.failed += 1
            if entry.tag:
                b.tagged_bad += 1
        else:  # its +QUEUED was counted as written
            self._stats.commands_written -= 1
            if entry.tag:
                self._stats.keys_written -= 1
        if message.startswith("BUSYKEY") and not self.options.replace:
            self._stats.keys_skipped += 1
            return
        name = entry.name
        if type(entry) is PackedRun:
            name, key = _command_of_run(entry, sub)
        elif (
            not inner
            and type(entry) is not Piece
            and self._on_redirect is not None
            and message.startswith(_REDIRECTS)
            and self._on_redirect(entry, message)
        ):
            return
        else:
            key = entry.key
        self._stats.commands_failed += 1
        if entry.tag:
            self._stats.keys_failed += 1
        shown_name = name.decode("ascii", "replace").upper()
        self._record(KeyFailure(entry.db, key, shown_name, message))
        if message.startswith(_FATAL) and self._error is None:
            # The target is full: every write after this one would be refused too. Stop here,
            # with the key and the server's words; the applied offset stays before it.
            shown = "-" if key is None else key.decode(errors="backslashreplace")
            self._error = MigrationError(
                f"{self.endpoint.display_url()} refused {shown_name} of db {entry.db} key {shown!r}: "
                f"{message}. Nothing after it was applied: free memory on the target (or raise "
                "its maxmemory) and restart the migration"
            )
            self._budget.fail(self._error)
            self._idle.set()

    def _record(self, failure: KeyFailure) -> None:
        self._failures.add(failure)
        if self.options.on_failure is not None:
            self.options.on_failure(failure)

    def _lost(self, error: ConnectionLostError) -> None:
        if self._error is None:
            pending = sum(b.commands for b in self._batches)
            msg = f"{error}" + (f" with {pending} commands unacknowledged" if pending else "")
            self._error = ConnectionLostError(msg)
        self._budget.fail(self._error)
        self._idle.set()


def _is_exec(e: Entry) -> bool:
    """Whether ``e`` is an EXEC (its reply an array)."""
    return type(e) is Command and len(e.argv) == 1 and bytes(e.argv[0]).upper() == b"EXEC"


def _command_of_run(run: PackedRun, n: int) -> tuple[bytes, bytes | None]:
    """The name and key of command ``n`` of a run of packed commands (a run of RESTOREs: its
    name, and the key, its second argument)."""
    reader = reply_reader()
    reader.feed(run.wire)
    for _ in range(n):
        reader.gets()
    argv = reader.gets()
    if not isinstance(argv, list) or not argv:
        return run.name, None
    if run.name:
        return run.name, bytes(argv[1]) if len(argv) > 1 else None
    name = bytes(argv[0])
    return name, command_key(argv, name.upper())
