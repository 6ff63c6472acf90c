"""The one place where a reader, the transform and a writer are wired together.

``run_pipeline`` runs a migration to its end (files, full sync) or until ``stop`` is set
(incremental), reports a status snapshot about once a second, saves checkpoints, and raises a
``CacheMigrateError`` with a readable message when it gives up (after logging it).

A ``Pipeline`` is one such run; who holds it can also ask where a replication source stands
(``applied_position``) and stop it at an exact replication offset (``stop_at``): the cutover
(engine/cutover.py) does, with the source's writes paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore
from cachemigrate.engine.entry import Command
from cachemigrate.engine.flow import TokenBucket
from cachemigrate.engine.presence import PresenceCheck
from cachemigrate.engine.readers.base import Reader, ReaderContext, RecordTransform, TransformFactory
from cachemigrate.engine.readers.rdb_file import RdbFileReader
from cachemigrate.engine.spec import PipelineSpec, SourceKind
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel, Phase, StatusSnapshot
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers import open_writer
from cachemigrate.engine.writers.base import Writer, WriterOptions
from cachemigrate.errors import CacheMigrateError, ConfigError, MigrationError
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.probe import TargetInfo, probe_target

if TYPE_CHECKING:  # imported where used: a file import's start-up does without them
    from cachemigrate.engine.exactly_once import ExactlyOnceApplier
    from cachemigrate.engine.readers.sync import SyncReader

STATUS_PERIOD = 1.0
FAILURES_LOGGED = 100  # failed keys named one by one in the log; the rest are counted


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
        self.checkpoints = checkpoints
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

    # ---- the run -----------------------------------------------------------------------------

    async def run(self) -> StatusSnapshot:
        spec = self.spec
        name = spec.name or spec.source.kind.value
        self.events.log(LogLevel.INFO, f"{name}: connecting to target {spec.target.display_url()}")
        reporter: asyncio.Task[None] | None = None
        try:
            self.target = await probe_target(spec.target)
            self.writer = await open_writer(spec.target, self._writer_options(), info=self.target)
            self.reader = await self._make_reader()
            self.applier = self._make_applier(self.reader, self.writer)
            self.presence = self._make_presence()
            self.events.log(LogLevel.INFO, f"{name}: target is {self.target.describe()}; "
                            f"reading {self.reader.source_kind}")
            if spec.options.flush_target:
                await self.writer.write([Command([b"FLUSHALL"], db=-1)])
            self.phase = Phase.FULL
            reporter = asyncio.create_task(self._report_loop())
            await self._pump(self.reader, self.writer)
            await self.writer.flush()
            await self._save_checkpoint()
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
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            if self.reader is not None:
                self.reader.stop()
            if self.presence is not None:
                with contextlib.suppress(CacheMigrateError, OSError):
                    await self.presence.close()
            if self.writer is not None:
                with contextlib.suppress(CacheMigrateError, OSError):
                    await self.writer.close()
        self.phase = Phase.STOPPED if self.stop.is_set() else Phase.DONE
        if self.applier is not None and (self.phase is Phase.DONE or not spec.options.resumable):
            await self._remove_marker()
        final = self.snapshot()
        self.events.status(final)
        self.events.log(LogLevel.INFO, f"{name}: {final.phase.value}: {final.keys_written} keys written, "
                        f"{final.keys_failed} failed, {final.keys_skipped} skipped in {final.elapsed:.1f} s")
        return final

    async def _pump(self, reader: Reader, writer: Writer) -> None:
        stop = self.stop
        write = self.applier.write if self.applier is not None else writer.write
        presence = self.presence
        async for batch in reader.batches():
            await write(batch if presence is None else await presence.filter(batch))
            if self._stop_at is not None:
                self._check_stop_at()
            if stop.is_set():
                reader.stop()
                break

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

    def _writer_options(self) -> WriterOptions:
        o = self.spec.options
        return WriterOptions(
            replace=o.replace, max_bytes_in_flight=o.max_bytes_in_flight,
            on_failure=self._on_failure,
            # db rules or a script may send a db anywhere (engine/filters.py)
            multi_db=o.db_mode.value == "keep"
            or bool(o.filters and (o.filters.db_map or o.filters.function)),
        )

    def _transform_factory(self) -> TransformFactory:
        assert self.target is not None
        target = self.target

        def make(header: RdbHeader) -> RecordTransform:
            # Runs of keys in one entry: only the standalone writer takes them, and only when
            # no entry is looked at key by key (presence check of a target that had keys).
            packed = not target.cluster and self.presence is None
            tf = Transformer(self.spec.options, header, target, packed=packed, events=self.events)
            self.transforms.append(tf)
            return tf

        return make

    async def _make_reader(self) -> Reader:
        spec, o = self.spec, self.spec.options
        src = spec.source
        factory = self._transform_factory()
        context = ReaderContext(o, factory, self.events)
        if src.kind in (SourceKind.RDB_FILES, SourceKind.AOF_FILES):
            if not src.paths:
                raise ConfigError("no backup file to import")
            from cachemigrate.engine.sources import BucketFiles, archive_kind

            bucket = TokenBucket(o.bandwidth_mb) if o.bandwidth_mb else None
            hook = bucket.consume if bucket else None
            files = BucketFiles(src.root, src.s3)  # every file opened stays inside src.root
            # Plain RDB files (local or s3://) take the fast reader; AOF, multi-part, archives the other.
            if src.kind is SourceKind.RDB_FILES and not any(archive_kind(p) for p in src.paths):
                return RdbFileReader(src.paths, context, opener=files.open, read_hook=hook)
            from cachemigrate.engine.readers.aof_file import AofFileReader  # only when needed: start-up

            return AofFileReader(src.paths, context, files=files, read_hook=hook)
        if src.kind in (SourceKind.SYNC, SourceKind.SCAN):
            if src.endpoint is None:
                raise ConfigError("an online migration needs a source URL")
            start = await self.checkpoints.load() if self.checkpoints else None
            if src.kind is SourceKind.SYNC and self.target is not None and not self.target.cluster:
                from cachemigrate.engine.exactly_once import resume_from_marker

                start = await resume_from_marker(start, spec.target, src.endpoint.address, self.events)
            if src.kind is SourceKind.SCAN:
                from cachemigrate.engine.readers.scan import ScanReader

                return ScanReader(src.endpoint, o, transform_factory=factory, events=self.events)
            from cachemigrate.engine.readers.cluster_source import open_sync_reader

            return await open_sync_reader(src.endpoint, context, start=start)
        raise ConfigError(f"source kind {src.kind.value} is not supported yet")

    def _make_applier(self, reader: Reader, writer: Writer) -> ExactlyOnceApplier | None:
        """Exactly-once incremental apply (engine/exactly_once.py): standalone targets of a
        replication source only; cluster targets stay at least once."""
        if self.spec.source.kind is not SourceKind.SYNC:
            return None  # (and readers.sync is not imported: start-up of a file import)
        # Also without --incremental: a full-only run resumed with +CONTINUE catches up on the
        # stream (readers/sync.py), and that catch-up must not apply a command twice either.
        from cachemigrate.engine.readers.sync import SyncReader

        if not isinstance(reader, SyncReader):
            return None
        if self.target is None or self.target.cluster:
            return None
        from cachemigrate.engine.exactly_once import ExactlyOnceApplier

        return ExactlyOnceApplier(writer, reader, reader.endpoint.address, self.events)

    def _make_presence(self) -> PresenceCheck | None:
        """Counts replaced keys (and keeps existing ones for no-replace rewrites) when the target
        already had keys. File and SCAN sources on standalone targets: a SYNC source's RESTOREs
        keep existing keys by themselves, and its later commands must apply to every key. A
        target flushed before the full phase has no keys to find."""
        t = self.target
        kind = self.spec.source.kind
        if t is None or t.cluster or t.total_keys == 0 or self.spec.options.flush_target:
            return None
        if kind not in (SourceKind.RDB_FILES, SourceKind.AOF_FILES, SourceKind.SCAN):
            return None
        return PresenceCheck(self.spec.target, replace=self.spec.options.replace)

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

    async def _save_checkpoint(self) -> None:
        """Saves run one at a time, in order, each to its end even when the caller is cancelled
        (a database save runs in a thread, which a cancellation does not stop): a periodic save
        cut short must not land after the last one, which the marker's removal relies on."""
        if self.checkpoints is None or self.reader is None or self.writer is None:
            return
        if self._saving is not None and not self._saving.done():
            await asyncio.wait([self._saving])  # neither raises its error nor cancels it
        cp = self.reader.checkpoint(self._applied_offset())
        if cp is not None:
            self._saving = saving = asyncio.ensure_future(self.checkpoints.save(cp))
            saving.add_done_callback(_retrieve)  # a save cut short reports nowhere: no warning
            await asyncio.shield(saving)

    async def _remove_marker(self) -> None:
        """The run is over for good (engine/exactly_once.py, "When the marker goes"): once the
        last checkpoint save has completed, the target's marker is deleted. A save that failed,
        or a target that cannot be reached, keeps the marker (a warning says so)."""
        assert self.applier is not None
        try:
            await self._save_checkpoint()  # after any periodic save cut short by the cancellation
            from cachemigrate.engine.exactly_once import remove_marker

            await remove_marker(self.spec.target, self.applier.source)
        except (CacheMigrateError, OSError, TimeoutError) as exc:
            self.events.log(LogLevel.WARNING, f"the offset marker stays in the target "
                            f"({self.applier.key.decode(errors='replace')}): {exc}")

    def snapshot(self, message: str = "") -> StatusSnapshot:
        r = self.reader.progress() if self.reader is not None else None
        w = self.writer.stats if self.writer is not None else None
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
        if w is not None:
            self._update_rates(w.commands_written, w.bytes_written)
        return StatusSnapshot(
            phase=phase,
            source_kind=self.reader.source_kind if self.reader is not None else self.spec.source.kind.value,
            started_at=self.started,
            updated_at=now,
            bytes_read=r.bytes_read if r else 0,
            bytes_total=r.bytes_total if r else None,
            keys_read=r.keys_read if r else 0,
            keys_written=w.keys_written if w else 0,
            keys_replaced=self.presence.replaced if self.presence else 0,
            keys_skipped=(w.keys_skipped if w else 0) + (self.presence.skipped if self.presence else 0),
            keys_failed=(w.keys_failed if w else 0) + skipped_filter,
            keys_expired=expired,
            keys_filtered=filtered + (r.keys_filtered if r else 0),
            commands_written=w.commands_written if w else 0,
            commands_failed=w.commands_failed if w else 0,
            bytes_written=w.bytes_written if w else 0,
            keys_by_type=by_type,
            source_offset=r.source_offset if r else None,
            applied_offset=self._applied_offset() if w and r and r.source_offset is not None else None,
            lag_seconds=r.lag_seconds if r else None,
            caught_up=r.caught_up if r else False,
            ops_per_sec=self._rates[0],
            kb_per_sec=self._rates[1],
            resumes_continue=r.resumes_continue if r else 0,
            resumes_fullresync=r.resumes_fullresync if r else 0,
            message=message or (r.message if r else ""),
        )

    def _update_rates(self, commands: int, nbytes: int) -> None:
        t, c0, b0 = self._last_rate
        now = time.monotonic()
        if now - t >= 0.5:
            self._rates = ((commands - c0) / (now - t), (nbytes - b0) / 1024 / (now - t))
            self._last_rate = (now, commands, nbytes)


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
