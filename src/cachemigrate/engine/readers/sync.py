"""Online source: act as a replica (PSYNC), apply the RDB, then the command stream, resuming.

Offsets. Entries carry *internal* offsets, and the checkpoint turns "incremental" only once the
whole RDB is applied: ``sync_offsets.py`` keeps them and says which checkpoint each stands for.

Resume. After a lost link (closed, error, or silent for ``repl_timeout``) the reader sends
``PSYNC replid delivered+1``; on ``+CONTINUE`` nothing is re-sent. On ``+FULLRESYNC`` (the source's
backlog no longer holds our offset) the target is first emptied: what a source ``FLUSHALL``
becomes under the db mode (``engine/dbmap.py``) goes before the new RDB's keys, because the
target is owned by the migration and keys deleted on the source while we were away must go.

Full-only resume. Without ``options.incremental`` the run ends once the target holds the source
as it was when the run started: after a full sync, at the end of the RDB; after a ``+CONTINUE``
(a checkpoint saved in an incremental phase, e.g. by an earlier ``--incremental`` run) at the
source's ``master_repl_offset`` read right after the resume (``_catch_up``): the backlog up to
there is applied, later writes are left to the next run, and the checkpoint ends there. Should
that offset not be readable (INFO refused), the stream is followed until it is idle for a second.

Idle streams. The master's PINGs count in the offset but are not forwarded; so that the applied
offset still reaches the source offset (lag 0, "caught up"), the last entry of a batch covers the
bytes of the PINGs after it, and a read with only PINGs becomes one PING entry for the target.

Lag. A control connection reads ``master_repl_offset`` (INFO replication) every second. Lag bytes
= that offset minus the applied offset (the one the pipeline last passed to ``checkpoint()``, or
the offset handed to the writer when it never does). Lag seconds = the time since the source was
first seen at an offset beyond the applied one (0 when caught up): how old the oldest write the
target is missing can be, to the resolution of the one-second samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.commands import STREAM_SPECIAL, CommandMapper
from cachemigrate.engine.entry import Command, Entry
from cachemigrate.engine.flow import Backoff, TokenBucket
from cachemigrate.engine.readers.base import Reader, ReaderContext, ReaderProgress
from cachemigrate.engine.readers.rdb_pump import RdbPump
from cachemigrate.engine.readers.source_offsets import OffsetSampler, fetch_info
from cachemigrate.engine.readers.sync_offsets import ReplicaOffsets
from cachemigrate.engine.spec import ResumeMode
from cachemigrate.engine.status import LogLevel, Phase
from cachemigrate.errors import (
    AddressNotAllowedError,
    CacheMigrateError,
    ConnectionLostError,
    ProtocolError,
    ResumeError,
)
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import (
    DEFAULT_REPL_TIMEOUT,
    PsyncResult,
    ReplicationLink,
    RetryLaterError,
    SyncRefusedError,
)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
_LOST = (ConnectionLostError, OSError)  # retried (resume mode auto); a ProtocolError is not


class SyncReader:
    """A replica of ``endpoint``; see the module docstring."""

    source_kind = "sync"

    def __init__(
        self,
        endpoint: Endpoint,
        context: ReaderContext,
        *,
        start: Checkpoint | None = None,
        repl_timeout: float = DEFAULT_REPL_TIMEOUT,
        control_period: float = 1.0,
        bucket: TokenBucket | None = None,
    ) -> None:
        if start is not None and start.source != endpoint.address:
            raise ResumeError(
                f"the checkpoint belongs to {start.source}, not to {endpoint.address}: "
                "use another checkpoint file (or none) for this source"
            )
        self.endpoint = endpoint
        self.context = context
        self.options = options = context.options
        self.start = start
        self.repl_timeout = repl_timeout
        self.control_period = control_period
        self.delegate: Reader | None = None  # the SCAN fallback
        # Shards of a cluster share one bucket: the limit is for the whole source.
        self._bucket = bucket or (TokenBucket(options.bandwidth_mb) if options.bandwidth_mb else None)
        self._stopped = False
        self._wake = asyncio.Event()  # set by stop(): a backoff wait ends at once
        self._connected = False
        self._link: ReplicationLink | None = None
        self._control: asyncio.Task[None] | None = None
        self._phase = Phase.CONNECTING
        self._catch_up_end: int | None = None  # full-only resume: internal offset to stop at
        self._had_data = start is not None  # the target may hold keys: a full sync flushes first
        self._mapper = CommandMapper(options, events=context.events)
        self._at = ReplicaOffsets(endpoint.address, self._mapper, start)
        self._pump: RdbPump | None = None  # the RDB of the current (or last) full sync
        self._keys_before = 0  # keys of the full syncs before it
        self._sampler = OffsetSampler(endpoint, control_period)
        self._bytes_read = 0
        self.resumes_continue = 0
        self.resumes_fullresync = 0
        self._message = ""

    # ---- the Reader role -------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self.delegate is not None:
            self.delegate.stop()
        if self._link is not None:
            self._link.abort()
        if self._control is not None:
            self._control.cancel()

    def progress(self) -> ReaderProgress:
        if self.delegate is not None:
            return self.delegate.progress()
        link = self._link
        full = self._phase is Phase.FULL
        source = self._source_offset()
        applied = self._at.applied if self._at.applied is not None else self._at.delivered
        lag_bytes = None if source is None else max(0, source - applied)
        return ReaderProgress(
            phase=self._phase,
            bytes_read=(link.rdb_received if link else 0) if full else self._bytes_read + (
                link.bytes_read if link else 0),
            bytes_total=link.rdb_size if full and link else None,
            keys_read=self._keys_before + (self._pump.keys_read if self._pump is not None else 0),
            source_offset=source,
            lag_seconds=self._lag_seconds(applied) if lag_bytes is not None else None,
            caught_up=self._phase is Phase.INCREMENTAL and lag_bytes == 0,
            resumes_continue=self.resumes_continue,
            resumes_fullresync=self.resumes_fullresync,
            message=self._message,
        )

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        if self.delegate is not None:
            return self.delegate.checkpoint(applied_offset)
        return self._at.checkpoint(applied_offset)

    def position(self, offset: int) -> Checkpoint | None:
        """The checkpoint the internal ``offset`` stands for, without side effects (the marker
        of engine/exactly_once.py); None when not known (no stream yet, the SCAN fallback)."""
        return None if self.delegate is not None else self._at.position(offset)

    def delivered_position(self) -> Checkpoint | None:
        """The checkpoint of the last entry handed out (``position`` of it)."""
        return self.position(self._at.delivered)

    async def batches(self) -> AsyncIterator[list[Entry]]:
        self._control = asyncio.get_running_loop().create_task(self._sampler.run(lambda: self._stopped))
        try:
            async for batch in self._sessions():
                yield batch
        finally:
            self._control.cancel()
        if self.delegate is not None:
            async for batch in self.delegate.batches():
                yield batch

    # ---- sessions and resume ---------------------------------------------------------------

    async def _sessions(self) -> AsyncIterator[list[Entry]]:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while not self._stopped:
            link = self._link = ReplicationLink(
                self.endpoint, repl_timeout=self.repl_timeout,
                throttle=self._bucket.consume if self._bucket else None,
                accelerated=None if self.options.c_walker else False,
            )
            try:
                await link.connect()
                self._connected = True
                res = await self._psync(link)
                until: int | None = None
                if res.full:
                    async for batch in self._full(link, res):
                        backoff.reset()
                        yield batch
                    if not self.options.incremental or self._stopped:
                        return
                elif not self.options.incremental:
                    until = await self._catch_up(link)
                async for batch in self._incremental(link, until=until):
                    backoff.reset()
                    yield batch
                return
            except SyncRefusedError as exc:
                if self._had_data or self.resumes_continue:
                    raise ResumeError(f"{self.endpoint.address} refused to resume: {exc}") from None
                self._fall_back(exc)
                return
            except RetryLaterError as exc:
                self._log(LogLevel.WARNING, f"source not ready ({exc}); retrying in {backoff.delay:g} s")
            except ProtocolError as exc:
                if self._stopped:
                    return
                # Not a dropped link: the server answered what a master never sends. Asking it
                # again gets the same answer (and a new full sync each time).
                raise ProtocolError(f"{self.endpoint.address} broke the replication protocol: {exc}") \
                    from None
            except _LOST as exc:
                if self._stopped:
                    return
                self._lost(exc, backoff.delay)
            finally:
                self._bytes_read += link.bytes_read
                link.bytes_read = 0
                await link.close()
            if await backoff.wait(self._wake):
                return  # stopped during the wait: at once, not after it

    def _lost(self, exc: BaseException, delay: float) -> None:
        """The link is gone or could not be made: raise, or log the retry (resume mode auto).

        A source that cannot be reached at the very start is reported at once (a wrong address,
        a source that is down); one that has been replicated before, in this run or by the run
        that saved the checkpoint (a service restart while the source is down), is waited for.
        """
        if (not self._connected and self.start is None) or isinstance(exc, AddressNotAllowedError):
            raise exc  # (an address the network policy refuses stays refused: no retry)
        if self.options.resume_mode is ResumeMode.MANUAL:
            what = "lost" if self._connected else "cannot be made"
            raise ResumeError(
                f"replication link to {self.endpoint.address} {what} ({exc}); resume mode is "
                "manual: run the migration again with the same checkpoint to continue"
            ) from None
        if self._connected:
            self._log(LogLevel.WARNING, f"replication link lost ({exc}); reconnecting in {delay:g} s")
        else:
            self._log(LogLevel.WARNING, f"source unreachable ({exc}); retrying in {delay:g} s")

    async def _psync(self, link: ReplicationLink) -> PsyncResult:
        at = self._at
        asked_continue = at.replid is not None and self._phase is not Phase.FULL
        if asked_continue:
            res = await link.psync(at.replid, at.replication(at.delivered) + 1)
        else:
            res = await link.psync(None, -1)
        if res.full:
            if self._had_data:
                self.resumes_fullresync += 1
                manual = self.options.resume_mode is ResumeMode.MANUAL
                if asked_continue and self.start is not None and manual:
                    raise ResumeError(
                        f"{self.endpoint.address} cannot continue the checkpoint (replid "
                        f"{self.start.replid}, offset {self.start.offset}): it answered FULLRESYNC. "
                        "Run again without the checkpoint, or with resume mode auto"
                    )
                self._log(LogLevel.WARNING, "the source answered FULLRESYNC: the target is flushed "
                          "and loaded again from a new snapshot")
            return res
        self.resumes_continue += 1
        at.continued(res.replid)
        self._log(LogLevel.INFO, f"resumed the replication stream at offset {res.offset + 1} (+CONTINUE)")
        return res

    def _fall_back(self, exc: CacheMigrateError) -> None:
        from cachemigrate.engine.readers.scan import ScanReader

        self._log(LogLevel.WARNING, f"the source refuses to replicate ({exc}): falling back to SCAN + DUMP "
                  "(full copy only, no incremental phase)")
        self.source_kind = "scan"
        c = self.context
        self.delegate = ScanReader(self.endpoint, c.options, transform_factory=c.transform_factory,
                                   events=c.events)

    # ---- phases ------------------------------------------------------------------------------

    async def _full(self, link: ReplicationLink, res: PsyncResult) -> AsyncIterator[list[Entry]]:
        self._phase = Phase.FULL
        end, rebased = self._at.begin_full(res.offset)
        if rebased:
            self._sampler.samples.clear()  # offsets of another history: not comparable any more
        pump = self._new_pump()
        if self._had_data:  # the target goes first: it may hold keys the source has deleted
            flushall = self._mapper.dbmap.flushall([b"FLUSHALL"])
            if flushall is not None:  # None: db rules (engine/dbmap.py)
                pump.batch.append(Command(*flushall))
        self._had_data = True
        # Every entry but the very last one is at end - 1: see the module docstring.
        before = end - 1
        async for chunk in link.rdb():
            for batch in pump.feed(chunk):
                yield self._full_batch(batch, before)
                if self._stopped:
                    return
        pump.close()
        extra = pump.parser.remainder()
        if extra:  # a bulk length past the RDB's end would swallow the start of the stream
            raise ProtocolError(f"{len(extra)} bytes after the end of the RDB in the master's transfer "
                                f"(a wrong bulk length?): {extra[:40]!r}")
        last = pump.take() or [Command([b"PING"], -1)]
        self._full_batch(last, before)[-1].source_offset = end
        self._at.delivered = end
        yield last
        self._at.end_full(res.replid, pump.stream_db)

    def _new_pump(self) -> RdbPump:
        if self._pump is not None:
            self._keys_before += self._pump.keys_read
        self._pump = RdbPump(self.endpoint.address, self.context)
        return self._pump

    def _full_batch(self, batch: list[Entry], offset: int) -> list[Entry]:
        for e in batch:
            e.source_offset = offset
        self._at.delivered = offset
        return batch

    async def _incremental(
        self, link: ReplicationLink, *, until: int | None = None
    ) -> AsyncIterator[list[Entry]]:
        """The command stream, until stopped; with ``until`` (a full-only resume, see the module
        docstring) only up to that internal offset, or -1: until the stream is idle."""
        self._phase = Phase.INCREMENTAL
        mapper = self._mapper
        at = self._at
        base = at.base
        if until is not None and 0 <= until <= link.offset + base:
            return  # nothing was written since the checkpoint
        special = STREAM_SPECIAL if self.context.packed and mapper.runs else None
        async for chunk in link.frames(special, idle=1.0):
            batch: list[Entry] = []
            data, start = chunk.data, chunk.base + base
            for argv, first, stop, count in chunk.segments:
                if argv is None:  # a run of commands, passed on as the source sent them
                    batch += mapper.map_run(data[first:stop], count, start + stop)
                else:
                    batch += mapper.map(argv, start + stop)
            end = link.offset + base
            if not mapper.in_multi and end > at.delivered:
                # PINGs and filtered commands have no effect: the last entry covers them too.
                if batch:
                    batch[-1].source_offset = max(batch[-1].source_offset, end)
                else:
                    batch.append(Command([b"PING"], -1, None, 0, end))
            if batch:
                at.delivered = max(at.delivered, batch[-1].source_offset)
            yield batch
            if self._stopped:
                return
            if until is not None and not mapper.in_multi and (
                link.offset + base >= until if until >= 0 else not chunk.segments
            ):
                self._log(LogLevel.INFO, f"caught up at offset {link.offset} (full-only run): done")
                return

    async def _catch_up(self, link: ReplicationLink) -> int:
        """Where a full-only run resumed with +CONTINUE ends: the internal offset of the source's
        ``master_repl_offset`` now (kept across reconnects), or -1 (until idle) when unreadable."""
        if self._catch_up_end is not None:
            return self._catch_up_end
        try:
            info = await fetch_info(self.endpoint, "replication")
            source = int(info.get("master_repl_offset", "-1"))
        except (CacheMigrateError, OSError, TimeoutError, ValueError) as exc:
            source, why = -1, str(exc)
        else:
            why = "no master_repl_offset in INFO replication"
        if source < 0:
            self._log(LogLevel.WARNING, f"cannot read the source's replication offset ({why}): without "
                      "--incremental, the resumed stream is applied until it is idle for a second")
            self._catch_up_end = -1
            return -1
        self._catch_up_end = self._at.internal(max(source, link.offset))
        self._log(LogLevel.INFO, f"without --incremental: applying the source's writes from offset "
                  f"{link.offset + 1} to {max(source, link.offset)}, then ending")
        return self._catch_up_end

    # ---- source offset and lag ---------------------------------------------------------------

    def _source_offset(self) -> int | None:
        if self._phase is not Phase.INCREMENTAL:
            return None
        at = self._at
        link_offset = at.internal(self._link.offset) if self._link is not None else at.delivered
        latest = self._sampler.latest()
        # The sample can be older than what the stream already delivered.
        return link_offset if latest is None else max(at.internal(latest), link_offset)

    def _lag_seconds(self, applied: int) -> float:
        return self._sampler.seconds_behind(self._at.replication(applied))

    def _log(self, level: LogLevel, message: str) -> None:
        self._message = message
        self.context.events.log(level, f"{self.endpoint.address}: {message}")

