"""The role every reader plays for the pipeline: produce batches of entries, say where it is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.entry import Entry, Packed, PackedRun
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink, Phase
from cachemigrate.engine.streamed import StreamedRestore
from cachemigrate.formats.rdb import BatchHook
from cachemigrate.formats.rdb.model import Function, KeyRecord, RdbHeader, ValueChunk


@dataclass(frozen=True, slots=True)
class ReaderProgress:
    """Where a reader is. Offsets are source positions comparable with Entry.source_offset."""

    phase: Phase
    bytes_read: int = 0
    bytes_total: int | None = None  # file size, or the announced RDB size of a full sync
    keys_read: int = 0
    source_offset: int | None = None  # online: the source's replication offset as last seen
    lag_seconds: float | None = None
    caught_up: bool = False
    resumes_continue: int = 0
    resumes_fullresync: int = 0
    keys_filtered: int = 0  # keys the filter rules left behind before reading them (SCAN)
    message: str = ""


class Reader(Protocol):
    """A source of entries.

    ``batches()`` yields lists of entries in source order until the source is exhausted (files,
    full-only sync) or ``stop()`` is called. Entries carry ``source_offset`` so that the pipeline
    can turn the writer's applied offset into a checkpoint with ``checkpoint(applied_offset)``.
    """

    source_kind: str

    def batches(self) -> AsyncIterator[list[Entry]]: ...

    def progress(self) -> ReaderProgress: ...

    def checkpoint(self, applied_offset: int) -> Checkpoint | None: ...

    def stop(self) -> None: ...


class RecordTransform(Protocol):
    """Turns RDB records into entries for the target (engine.transform.Transformer).

    ``key_fields`` and ``batch_hook`` are the parser's ``key_hook`` and ``batch_hook``
    (``formats.rdb.KeyHook``): the fast path of one key and of a run of keys (None: no C walker).
    ``dbmap`` is the db mapping the transform applies, for the commands of a command source.
    """

    def key(self, rec: KeyRecord) -> list[Entry]: ...

    def key_fields(
        self, db: int, key: bytes, t: int, raw: bytes, exp: int, idle: int | None, freq: int | None,
        offset: int, end_offset: int, meta: bytes | None, /,
    ) -> Packed | list[Entry]: ...

    @property
    def batch_hook(self) -> BatchHook[PackedRun] | None: ...

    @property
    def walked_expired(self) -> int:
        """Expired keys the batch hook skipped (no entry, no record)."""
        ...

    def chunk(self, chunk: ValueChunk) -> list[Entry]: ...

    def stream_big(self, rec: KeyRecord) -> StreamedRestore | None:
        """How a big key's RESTORE is streamed (``engine/streamed.py``); None: it is not (its
        value comes as ``ValueChunk`` records for ``key`` and ``chunk``)."""
        ...

    def streamed(self, st: StreamedRestore) -> None:
        """A streamed key is sent as its RESTORE (counted)."""
        ...

    @property
    def max_payload(self) -> int:
        """The largest RESTORE payload the target takes (its proto-max-bulk-len)."""
        ...

    def function(self, fn: Function) -> list[Entry]: ...

    @property
    def dbmap(self) -> DbMap: ...


# Readers that walk an RDB get the transform only once they know the RDB header: the pipeline
# hands them this factory.
TransformFactory = Callable[[RdbHeader], RecordTransform]


@dataclass(frozen=True, slots=True)
class ReaderContext:
    """What the pipeline hands every reader, and a reader the parts it reads with (a file of a
    set, a cluster shard, an RDB): the migration's options, the transform factory and where
    events go."""

    options: PipelineOptions
    transform_factory: TransformFactory
    events: EventSink
    # The writer takes entries of many commands (PackedRun: a standalone target): a replication
    # stream may then pass runs of its commands on as bytes (engine/commands.py).
    packed: bool = False

__all__ = ["EventSink", "Reader", "ReaderContext", "ReaderProgress", "RecordTransform", "TransformFactory"]
