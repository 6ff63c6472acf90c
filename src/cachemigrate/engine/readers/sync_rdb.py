"""The RDB of a full sync as batches of entries (parser + transform), for the sync reader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import cast

from cachemigrate.engine.entry import Command, Entry, Packed, PackedRun
from cachemigrate.engine.readers.base import RecordTransform, TransformFactory
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink, LogLevel
from cachemigrate.formats.rdb import RdbParser
from cachemigrate.formats.rdb.model import Aux, Function, KeyRecord, ModuleAux, ValueChunk

BATCH_ENTRIES = 2048
BATCH_BYTES = 4 << 20


class RdbEntries:
    """The RDB of a full sync, streamed through the parser and the transform (RESTORE path)."""

    def __init__(
        self, options: PipelineOptions, factory: TransformFactory, events: EventSink, name: str
    ) -> None:
        self.options = options
        self.factory = factory
        self.events = events
        self.name = name
        self.keys = 0
        self.stream_db = 0  # repl-stream-db: the db the command stream starts in
        self._warned = False

    async def run(
        self, chunks: AsyncIterator[bytes], end: int, first: list[Entry], stopped: Callable[[], bool]
    ) -> AsyncIterator[list[Entry]]:
        """Batches of entries at offset ``end - 1``, the very last one at ``end``."""
        o = self.options
        parser = RdbParser(source=self.name, max_value_bytes=o.big_key_bytes, chunk_elements=o.chunk_elements)
        tf: RecordTransform | None = None
        batch, nbytes, keys = first, 0, 0
        before = end - 1
        append = batch.append
        self.stream_db = 0
        async for chunk in chunks:
            parser.feed(chunk)
            records: Iterator[object] = parser.records()  # with key_hook: Entry / list too
            for rec in records:
                cls = rec.__class__
                if cls is Packed or cls is PackedRun:
                    # Hot path (parser.key_hook / batch_hook): the RESTORE of one key, or of a run
                    # of keys (C walker); size: its wire size.
                    keys += rec.count  # type: ignore[attr-defined]
                    rec.source_offset = before  # type: ignore[attr-defined]
                    nbytes += rec.size  # type: ignore[attr-defined]
                    append(rec)  # type: ignore[arg-type]
                    continue
                if cls is list:  # a key the hook sent the other way (rewrite, dropped)
                    keys += 1
                    entries = cast("list[Entry]", rec)
                elif cls is KeyRecord:
                    keys += 1
                    if tf is None:
                        tf = self._transform(parser)
                        parser.key_hook = getattr(tf, "key_fields", None)
                        parser.batch_hook = getattr(tf, "batch_hook", None)
                    entries = tf.key(rec)  # type: ignore[arg-type]
                elif cls is ValueChunk or cls is Function:
                    if tf is None:
                        tf = self._transform(parser)
                        parser.key_hook = getattr(tf, "key_fields", None)
                        parser.batch_hook = getattr(tf, "batch_hook", None)
                    entries = tf.chunk(rec) if cls is ValueChunk else tf.function(rec)  # type: ignore[arg-type]
                else:
                    self._other(rec)
                    continue
                for e in entries:  # one or a few entries per key
                    e.source_offset = before
                    if type(e) is Command:
                        nbytes += e.size or sum(map(len, e.argv)) + 40 * len(e.argv)  # + object overhead
                    else:
                        nbytes += e.size
                    append(e)
            self.keys += keys
            keys = 0
            if len(batch) > BATCH_ENTRIES or nbytes > BATCH_BYTES:
                carry = batch.pop()  # the last entry waits: it may turn out to be the RDB's last
                yield batch
                batch, nbytes = [carry], 0
                append = batch.append
                if stopped():
                    return
        parser.close()
        if batch:
            batch[-1].source_offset = end
        else:
            batch = [Command([b"PING"], -1, None, 0, end)]
        yield batch

    def _transform(self, parser: RdbParser) -> RecordTransform:
        assert parser.header is not None
        return self.factory(parser.header)

    def _other(self, rec: object) -> None:
        if isinstance(rec, Aux):
            if rec.key == b"repl-stream-db":
                self.stream_db = int(rec.value)
        elif isinstance(rec, ModuleAux) and not self._warned:
            self._warned = True
            self.events.log(LogLevel.WARNING, f"{self.name}: module aux data of {rec.module_name!r} "
                            "cannot be carried over")
