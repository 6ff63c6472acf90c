"""The RDB of a full sync as batches of entries (parser + transform), for the sync reader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from cachemigrate.engine.entry import Entry
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

    async def run(
        self, chunks: AsyncIterator[bytes], end: int, first: list[Entry], stopped: Callable[[], bool]
    ) -> AsyncIterator[list[Entry]]:
        """Batches of entries at offset ``end - 1``, the very last one at ``end``."""
        o = self.options
        parser = RdbParser(source=self.name, max_value_bytes=o.big_key_bytes, chunk_elements=o.chunk_elements)
        tf: RecordTransform | None = None
        batch, nbytes, warned = first, 0, False
        self.stream_db = 0
        async for chunk in chunks:
            parser.feed(chunk)
            for rec in parser.records():
                kind = type(rec)
                if isinstance(rec, Aux):
                    if rec.key == b"repl-stream-db":
                        self.stream_db = int(rec.value)
                    continue
                if kind is ModuleAux and not warned:
                    warned = True
                    self.events.log(LogLevel.WARNING, f"{self.name}: module aux data cannot be carried over")
                if kind not in (KeyRecord, ValueChunk, Function):
                    continue
                if tf is None:
                    assert parser.header is not None
                    tf = self.factory(parser.header)
                if kind is KeyRecord:
                    self.keys += 1
                    entries = tf.key(rec)  # type: ignore[arg-type]
                elif kind is ValueChunk:
                    entries = tf.chunk(rec)  # type: ignore[arg-type]
                else:
                    entries = tf.function(rec)  # type: ignore[arg-type]
                for e in entries:
                    e.source_offset = end - 1
                    nbytes += e.size or 64
                batch += entries
            if len(batch) > BATCH_ENTRIES or nbytes > BATCH_BYTES:
                carry = batch.pop()  # the last entry waits: it may turn out to be the RDB's last
                yield batch
                batch, nbytes = [carry], 0
                if stopped():
                    return
        parser.close()
        if batch:
            batch[-1].source_offset = end
        else:
            batch = [Entry([b"PING"], -1, None, 0, end)]
        yield batch
