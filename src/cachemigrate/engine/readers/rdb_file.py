"""Reader over one or more RDB files (or open binary streams): the backup-file import source."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import BinaryIO, cast

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.entry import Arg, Command, Entry, Packed, PackedRun
from cachemigrate.engine.readers.base import ReaderProgress, RecordTransform, TransformFactory
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink, LogLevel, Phase
from cachemigrate.errors import ConfigError, RdbFormatError
from cachemigrate.formats.rdb import RdbParser
from cachemigrate.formats.rdb.model import Function, KeyRecord, ModuleAux, ValueChunk

CHUNK = (1 << 20) - (16 << 10)  # under the CLI's 1 MiB mmap threshold: reused heap blocks, no page faults
BATCH_ENTRIES = 2048
BATCH_BYTES = 4 << 20

# An opener returns (stream, size or None, display name); the bucket reader plugs in here.
Opener = Callable[[str], tuple[BinaryIO, int | None, str]]


def open_local(path: str) -> tuple[BinaryIO, int | None, str]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the reader
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    return fh, os.fstat(fh.fileno()).st_size, path


def _argv_bytes(argv: list[Arg]) -> int:
    """Memory an unpacked command holds: its bytes plus about 40 per argument object."""
    return sum(map(len, argv)) + 40 * len(argv)


class RdbFileReader:
    """Walks each file in turn; entries carry the byte offset reached across all files."""

    source_kind = "rdb_file"

    def __init__(
        self,
        paths: Sequence[str],
        options: PipelineOptions,
        *,
        transform_factory: TransformFactory,
        events: EventSink,
        opener: Opener = open_local,
        read_hook: Callable[[int], object] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.options = options
        self.transform_factory = transform_factory
        self.events = events
        self.opener = opener
        self.read_hook = read_hook  # awaited per chunk when it returns an awaitable (bandwidth)
        self._stopped = False
        self._bytes_read = 0
        self._bytes_total: int | None = 0
        self._keys = 0
        self.transforms: list[RecordTransform] = []
        self._tf: RecordTransform | None = None
        self._warned_aux = False

    def stop(self) -> None:
        self._stopped = True

    def progress(self) -> ReaderProgress:
        return ReaderProgress(
            phase=Phase.FULL,
            bytes_read=self._bytes_read,
            bytes_total=self._bytes_total,
            keys_read=self._keys + sum(getattr(tf, "walked_expired", 0) for tf in self.transforms),
        )

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        return None  # a file import is re-run from the start (RESTORE REPLACE is idempotent)

    async def batches(self) -> AsyncIterator[list[Entry]]:
        opened = [self.opener(p) for p in self.paths]
        try:
            sizes = [size for _, size, _ in opened]
            self._bytes_total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
            base = 0
            for fh, _size, name in opened:
                async for batch in self._one(fh, name, base):
                    yield batch
                    if self._stopped:
                        return
                base = self._bytes_read
        finally:
            for fh, _, _ in opened:
                fh.close()

    async def _one(self, fh: BinaryIO, name: str, base: int) -> AsyncIterator[list[Entry]]:
        parser = RdbParser(
            source=name,
            max_value_bytes=self.options.big_key_bytes,
            chunk_elements=self.options.chunk_elements,
        )
        self._tf = None
        self._warned_aux = False
        batch: list[Entry] = []
        batch_bytes = 0  # of `batch`, which carries over from one read chunk to the next
        read = fh.read
        loop = asyncio.get_running_loop()
        try:
            while True:
                # In a thread: a bucket stream may block, and replies are read meanwhile.
                data = await loop.run_in_executor(None, read, CHUNK)
                if not data:
                    break
                self._bytes_read += len(data)
                if self.read_hook is not None:
                    pending = self.read_hook(len(data))
                    if asyncio.iscoroutine(pending):
                        await pending
                parser.feed(data)
                records: Iterator[object] = parser.records()  # with key_hook: Entry / list too
                for rec in records:
                    cls = rec.__class__
                    if cls is Packed or cls is PackedRun:
                        # Hot path (parser.key_hook / batch_hook): the RESTORE of one key, or of a
                        # run of keys (C walker); size: its wire size.
                        self._keys += rec.count  # type: ignore[attr-defined]
                        if base:
                            rec.source_offset += base  # type: ignore[attr-defined]
                        batch.append(rec)  # type: ignore[arg-type]
                        batch_bytes += rec.size  # type: ignore[attr-defined]
                    else:
                        entries = self._entries(rec, parser, name)
                        if not entries:
                            continue
                        if base:
                            for e in entries:
                                e.source_offset += base
                        batch += entries
                        for e in entries:
                            batch_bytes += e.size or (_argv_bytes(e.argv) if type(e) is Command else 0)
                    if len(batch) >= BATCH_ENTRIES or batch_bytes >= BATCH_BYTES:
                        yield batch
                        batch, batch_bytes = [], 0
                        if self._stopped:
                            return
            parser.close()
        except RdbFormatError:
            if batch:
                yield batch  # every whole key before the damage is kept; the error names the offset
            raise
        if batch:
            yield batch

    def _entries(self, rec: object, parser: RdbParser, name: str) -> list[Entry]:
        kind = type(rec)
        if kind is list:  # a key the parser's key_hook sent the other way (rewrite, dropped)
            self._keys += 1
            return cast("list[Entry]", rec)
        if parser.key_hook is None and self._tf is not None:
            parser.key_hook = getattr(self._tf, "key_fields", None)
            parser.batch_hook = getattr(self._tf, "batch_hook", None)
        if kind is KeyRecord:
            self._keys += 1
            return self._transform(parser).key(rec)  # type: ignore[arg-type]
        if kind is ValueChunk:
            return self._transform(parser).chunk(rec)  # type: ignore[arg-type]
        if kind is Function:
            return self._transform(parser).function(rec)  # type: ignore[arg-type]
        if isinstance(rec, ModuleAux) and not self._warned_aux:
            self._warned_aux = True
            self.events.log(
                LogLevel.WARNING,
                f"{name}: module aux data of {rec.module_name!r} cannot be carried over and is skipped",
            )
        return []

    def _transform(self, parser: RdbParser) -> RecordTransform:
        tf = self._tf
        if tf is None:
            assert parser.header is not None
            tf = self._tf = self.transform_factory(parser.header)
            self.transforms.append(tf)
        return tf
