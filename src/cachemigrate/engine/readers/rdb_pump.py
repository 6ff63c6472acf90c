"""An RDB's records as batches of entries: the one dispatch of every reader that walks an RDB.

The file reader (``rdb_file``), the AOF loader (its RDB part, ``_aof_load``) and the full sync
(``sync``) feed their bytes to an ``RdbPump``. As soon as the RDB header is read the pump makes
the transform and hands its fast paths to the parser as hooks: ``Transformer.key_fields`` for
each whole key (a ``Packed`` RESTORE, or a list of entries when the key is rewritten, expired or
left out) and the C walker's ``PackedRuns`` for runs of keys (a ``PackedRun``). Records the hooks
leave (big keys and their chunks, functions, AUX, module AUX) go through the transform here.

A big key the target can RESTORE is asked for as its bytes (the parser's ``raw_hook``:
``Transformer.stream_big``): its ``RawChunk`` records are spooled and, at its end, become the
``Piece`` entries of ONE RESTORE (``engine/streamed.py``), handed out a batch at a time; when the
payload is above the target's proto-max-bulk-len, the spool is replayed into the chunked rewrite.

Entries keep the parser's stream offsets (``source_offset``: the offset in this RDB once the
entry is applied); a reader shifts or pins them as its checkpoints need.
"""

from __future__ import annotations

from collections.abc import Iterator

from cachemigrate.engine.entry import Command, Entry, Packed, PackedRun
from cachemigrate.engine.readers.base import ReaderContext, RecordTransform
from cachemigrate.engine.status import LogLevel
from cachemigrate.engine.streamed import StreamedRestore
from cachemigrate.formats.dump import FOOTER_SIZE
from cachemigrate.formats.rdb import HookedParser, RdbHeader, RdbParser
from cachemigrate.formats.rdb.model import Aux, Function, KeyRecord, ModuleAux, RawChunk, Record, ValueChunk

BATCH_ENTRIES = 2048
BATCH_BYTES = 4 << 20
ARG_OVERHEAD = 40  # bytes an argument object holds beside its data (what an unpacked command costs)

Hooked = Packed | PackedRun | list[Entry]
"""What the transform's hooks make of keys, in place of ``KeyRecord`` records."""

PumpItem = Record | Hooked
"""What the pump's parser yields: ``HookedParser[Hooked].records()``."""


class RdbPump:
    """Feed one RDB's bytes in order; get batches of at most about ``batch_entries`` entries or
    ``batch_bytes`` bytes (the byte bound is checked after each record, so a big key's chunks do
    not pile up)."""

    def __init__(
        self,
        source: str,
        context: ReaderContext,
        *,
        batch_entries: int = BATCH_ENTRIES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        o = context.options
        self.source = source
        self.context = context
        self.parser: HookedParser[Hooked] = HookedParser(
            source=source, max_value_bytes=o.big_key_bytes, chunk_elements=o.chunk_elements
        )
        self.batch_entries = batch_entries
        self.batch_bytes = batch_bytes
        self.transform: RecordTransform | None = None
        self.batch: list[Entry] = []  # entries not handed out yet
        self.nbytes = 0  # of ``batch``
        self.keys = 0  # keys walked (expired and filtered ones included)
        self.stream_db = 0  # the repl-stream-db AUX field: the db a replication stream starts in
        self._warned_aux = False
        self._streamed: tuple[StreamedRestore, KeyRecord] | None = None  # a big key being spooled

    @property
    def keys_read(self) -> int:
        """``keys`` and the expired keys the C walker skipped without a record."""
        tf = self.transform
        return self.keys + (tf.walked_expired if tf is not None else 0)

    def feed(self, data: bytes) -> Iterator[list[Entry]]:
        """Parse ``data``; yield each batch that fills up. The rest waits in ``batch`` (``take``).

        On a format error the entries of every whole record before the damage are in ``batch``.
        """
        parser = self.parser
        parser.feed(data)
        records: Iterator[PumpItem] = parser.records()
        if self.transform is None and parser.header is not None:
            self._start(parser.header)
        batch = self.batch
        append = batch.append
        nbytes = self.nbytes
        keys = 0
        max_entries, max_bytes = self.batch_entries, self.batch_bytes
        try:
            for rec in records:
                if type(rec) is Packed:  # the hot path: one key's RESTORE
                    keys += 1
                    nbytes += rec.size
                    append(rec)
                elif type(rec) is PackedRun:  # a run of keys' RESTOREs (C walker)
                    keys += rec.count
                    nbytes += rec.size
                    append(rec)
                elif type(rec) is RawChunk:  # a streamed big key's bytes
                    for e in self._raw_chunk(rec):
                        append(e)
                        nbytes += e.size or _unpacked_size(e)
                        if len(batch) >= max_entries or nbytes >= max_bytes:
                            self.keys += keys
                            keys = nbytes = 0
                            full, self.batch, self.nbytes = batch, [], 0
                            yield full
                            batch = self.batch
                            append = batch.append
                    continue
                else:
                    entries = self._entries(rec)
                    if not entries:
                        continue
                    for e in entries:
                        nbytes += e.size or _unpacked_size(e)
                    batch += entries
                if len(batch) >= max_entries or nbytes >= max_bytes:
                    self.keys += keys
                    keys = nbytes = 0
                    full, self.batch, self.nbytes = batch, [], 0
                    yield full
                    batch = self.batch
                    append = batch.append
                    nbytes = self.nbytes
        finally:
            self.keys += keys
            self.nbytes = nbytes

    def take(self) -> list[Entry]:
        """The entries not handed out yet."""
        batch, self.batch, self.nbytes = self.batch, [], 0
        return batch

    def close(self) -> None:
        """The RDB must be complete: RdbFormatError (naming the offset) when it is not."""
        if self._streamed is not None:
            self._streamed[0].close()
        self.parser.close()

    def _start(self, header: RdbHeader) -> None:
        tf = self.transform = self.context.transform_factory(header)
        parser = self.parser
        parser.key_hook = tf.key_fields
        parser.batch_hook = tf.batch_hook
        parser.raw_hook = self._raw_hook
        # A whole value above the target's proto-max-bulk-len goes the big-key way (rewritten).
        parser.max_value_bytes = max(1, min(parser.max_value_bytes, tf.max_payload - 1 - FOOTER_SIZE))

    def _raw_hook(self, rec: KeyRecord) -> bool:
        assert self.transform is not None
        st = self.transform.stream_big(rec)
        self._streamed = None if st is None else (st, rec)
        return st is not None

    def _raw_chunk(self, rec: RawChunk) -> Iterator[Entry]:
        """Spool a streamed key's bytes; at its end, its RESTORE as pieces (or its rewrite)."""
        assert self._streamed is not None and self.transform is not None
        st, krec = self._streamed
        if rec.key != st.source_key:
            raise AssertionError("raw value chunk of another key than the one being streamed")
        st.add(rec.data)
        if not rec.last:
            return
        self._streamed = None
        if st.payload_len <= self.transform.max_payload:
            self.transform.streamed(st)
            yield from st.pieces(rec.end_offset)
            return
        yield from self._rewrite_spooled(st, krec, rec.end_offset)

    def _rewrite_spooled(self, st: StreamedRestore, rec: KeyRecord, end_offset: int) -> Iterator[Entry]:
        """A payload too big for the target: the spooled value read back as an RDB of that one
        key, and rewritten in chunks of plain commands as any big key the target cannot RESTORE."""
        tf = self.transform
        header = self.parser.header
        assert tf is not None and header is not None
        rec.raw = False
        rec.end_offset = end_offset
        yield from tf.key(rec)
        o = self.context.options
        replay: RdbParser = RdbParser(verify_checksum=False, max_value_bytes=1,
                                      chunk_elements=o.chunk_elements, source=self.source)
        for data in st.replay(header):
            replay.feed(data)
            for r in replay.records():
                if type(r) is ValueChunk:
                    r.end_offset = end_offset if r.last else rec.offset
                    yield from tf.chunk(r)
        replay.close()

    def _entries(self, rec: Record | list[Entry]) -> list[Entry]:
        if type(rec) is list:  # a key the hook sent the other way (rewrite, expired, left out)
            self.keys += 1
            return rec
        tf = self.transform
        assert tf is not None  # made as soon as the header is read, before any record
        if type(rec) is KeyRecord:  # walked by the slow path: cut by a read, or big (chunks follow)
            self.keys += 1
            return [] if rec.raw else tf.key(rec)  # raw: its RawChunk records follow
        if type(rec) is ValueChunk:
            return tf.chunk(rec)
        if type(rec) is Function:
            return tf.function(rec)
        if type(rec) is Aux:
            if rec.key == b"repl-stream-db":
                self.stream_db = int(rec.value)
        elif type(rec) is ModuleAux and not self._warned_aux:
            self._warned_aux = True
            self.context.events.log(LogLevel.WARNING, f"{self.source}: module aux data of "
                                    f"{rec.module_name!r} cannot be carried over and is skipped")
        return []


def _unpacked_size(e: Entry) -> int:
    """Memory a command not packed yet holds: its bytes plus the argument objects."""
    if type(e) is Command:
        return sum(map(len, e.argv)) + ARG_OVERHEAD * len(e.argv)
    return e.size
