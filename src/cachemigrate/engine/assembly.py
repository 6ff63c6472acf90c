"""The parts of one session of a run (engine/pipeline.py), chosen from its spec and its target:
the reader with the position it starts from, the writer's options, the transform per RDB header,
the exactly-once applier and the presence check.

Where a replication source starts: its checkpoint, followed to a promoted replica when the
source moved (engine/failover.py), then moved to the exactly-once marker the target holds
(engine/exactly_once.py ``resume_from_marker``), or turned into a new full sync when the target
has lost what was migrated. A target that does not answer while its marker is read raises
``TargetLost``: the pipeline ends the session and may wait for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore
from cachemigrate.engine.flow import TokenBucket
from cachemigrate.engine.presence import PresenceCheck
from cachemigrate.engine.readers.base import Reader, ReaderContext, RecordTransform, TransformFactory
from cachemigrate.engine.readers.rdb_file import RdbFileReader
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers.base import Writer, WriterOptions
from cachemigrate.errors import CacheMigrateError, ConfigError, ConnectionLostError, LoadingError
from cachemigrate.formats.rdb.model import RdbHeader
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo

if TYPE_CHECKING:  # imported where used: a file import's start-up does without them
    from cachemigrate.engine.exactly_once import ExactlyOnceApplier

# What a target that went away (or is restarting) looks like to a session.
TARGET_DOWN = (ConnectionLostError, LoadingError, OSError, TimeoutError)


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, CacheMigrateError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


class TargetLost(Exception):
    """The target went away under a session; ``cause`` is what said so."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(reason(cause))


def writer_options(o: PipelineOptions, on_failure: Callable[[KeyFailure], None]) -> WriterOptions:
    return WriterOptions(
        replace=o.replace, max_bytes_in_flight=o.max_bytes_in_flight,
        on_failure=on_failure,
        # db rules or a script may send a db anywhere (engine/filters.py)
        multi_db=o.db_mode.value == "keep"
        or bool(o.filters and (o.filters.db_map or o.filters.function)),
    )


def transform_factory(
    o: PipelineOptions, target: TargetInfo, events: EventSink, made: list[Transformer],
    looked_at: Callable[[], bool],
) -> TransformFactory:
    """A Transformer per RDB header, each appended to ``made`` (the run's counters).
    ``looked_at``: whether entries are looked at key by key (a presence check)."""

    def make(header: RdbHeader) -> RecordTransform:
        # Runs of keys in one entry: only the standalone writer takes them, and only when
        # no entry is looked at key by key (presence check of a target that had keys).
        packed = not target.cluster and not looked_at()
        tf = Transformer(o, header, target, packed=packed, events=events)
        made.append(tf)
        return tf

    return make


async def open_reader(
    spec: PipelineSpec, target: TargetInfo, checkpoints: CheckpointStore, factory: TransformFactory,
    events: EventSink,
) -> Reader:
    """The reader of ``spec``'s source for a session on ``target``, from the store's checkpoint."""
    o, src = spec.options, spec.source
    # A standalone target takes runs of commands in one entry (PackedRun).
    context = ReaderContext(o, factory, events, packed=not target.cluster)
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
        start = await checkpoints.load()
        moved = False
        if src.kind is SourceKind.SYNC and start is not None and start.source != src.endpoint.address:
            from cachemigrate.engine.failover import MOVED_FROM, follow_failover  # a failed-over source

            start = await follow_failover(start, src.endpoint, None if target.cluster else spec.target,
                                          events)
            moved = start is not None and MOVED_FROM in start.extra
        if src.kind is SourceKind.SYNC and start is not None and not moved:
            # (a checkpoint moved to a promoted replica has its resume point already: the
            # old source's marker, which the new source's marker does not replace yet)
            start = await resume_point(spec, target, start, src.endpoint, events)
        if src.kind is SourceKind.SCAN:
            from cachemigrate.engine.readers.scan import ScanReader

            return ScanReader(src.endpoint, o, transform_factory=factory, events=events)
        from cachemigrate.engine.readers.cluster_source import open_sync_reader

        return await open_sync_reader(src.endpoint, context, start=start)
    raise ConfigError(f"source kind {src.kind.value} is not supported yet")


async def resume_point(
    spec: PipelineSpec, target: TargetInfo, start: Checkpoint, source: Endpoint, events: EventSink
) -> Checkpoint:
    """Where a replication source continues on this target: the exactly-once marker's
    position on a standalone target (engine/exactly_once.py); a new full sync when a target
    has lost what was migrated (its marker; a cluster source, without markers: every key)."""
    from cachemigrate.engine.readers.cluster_source import is_cluster_checkpoint

    if not target.cluster and not is_cluster_checkpoint(start):
        from cachemigrate.engine.exactly_once import resume_from_marker

        try:
            point = await resume_from_marker(start, spec.target, source.address, events)
        except TARGET_DOWN as exc:
            raise TargetLost(exc) from exc
        return point or start
    # A cluster target's probe counts the keys of one node only: no conclusion there.
    if start.phase == "incremental" and not target.cluster and target.total_keys == 0:
        events.log(LogLevel.WARNING, f"the target {spec.target.display_url()} is empty: it "
                   "came back empty or was flushed; a new full synchronization loads it again")
        return Checkpoint(start.source, start.replid, start.offset, phase="full")
    return start


def make_applier(
    spec: PipelineSpec, target: TargetInfo, reader: Reader, writer: Writer, events: EventSink
) -> ExactlyOnceApplier | None:
    """Exactly-once incremental apply (engine/exactly_once.py): standalone targets of a
    replication source only; cluster targets stay at least once."""
    if spec.source.kind is not SourceKind.SYNC:
        return None  # (and readers.sync is not imported: start-up of a file import)
    # Also without --incremental: a full-only run resumed with +CONTINUE catches up on the
    # stream (readers/sync.py), and that catch-up must not apply a command twice either.
    from cachemigrate.engine.readers.sync import SyncReader

    if not isinstance(reader, SyncReader) or target.cluster:
        return None
    from cachemigrate.engine.exactly_once import ExactlyOnceApplier
    from cachemigrate.engine.failover import MOVED_FROM

    moved = reader.start.extra.get(MOVED_FROM) if reader.start is not None else None
    return ExactlyOnceApplier(writer, reader, reader.endpoint.address, events,
                              obsolete=str(moved) if moved else None)


def make_presence(spec: PipelineSpec, target: TargetInfo) -> PresenceCheck | None:
    """Counts replaced keys (and keeps existing ones for no-replace rewrites) when the target
    already had keys. File and SCAN sources on standalone targets: a SYNC source's RESTOREs
    keep existing keys by themselves, and its later commands must apply to every key. A
    target flushed before the full phase has no keys to find."""
    o = spec.options
    if target.cluster or target.total_keys == 0 or o.flush_target:
        return None
    if spec.source.kind not in (SourceKind.RDB_FILES, SourceKind.AOF_FILES, SourceKind.SCAN):
        return None
    return PresenceCheck(spec.target, replace=o.replace)
