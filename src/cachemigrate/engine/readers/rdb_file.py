"""Reader over one or more RDB files (or open binary streams): the backup-file import source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import BinaryIO

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.confine import Opener, Source, open_confined
from cachemigrate.engine.entry import Entry
from cachemigrate.engine.readers.base import ReaderContext, ReaderProgress
from cachemigrate.engine.readers.rdb_pump import RdbPump
from cachemigrate.engine.status import Phase
from cachemigrate.errors import RdbFormatError

CHUNK = (1 << 20) - (16 << 10)  # bytes per read: about 1 MiB, one parser feed each


def open_local(path: str) -> Source:
    """The default opener: a local path as given (a bucket's files: ``sources.BucketFiles.open``)."""
    return open_confined(None, path)


class RdbFileReader:
    """Walks each file in turn; entries carry the byte offset reached across all files."""

    source_kind = "rdb_file"

    def __init__(
        self,
        paths: Sequence[str],
        context: ReaderContext,
        *,
        opener: Opener = open_local,
        read_hook: Callable[[int], object] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.context = context
        self.opener = opener
        self.read_hook = read_hook  # awaited per chunk when it returns an awaitable (bandwidth)
        self._stopped = False
        self._bytes_read = 0
        self._bytes_total: int | None = 0
        self._pumps: list[RdbPump] = []

    def stop(self) -> None:
        self._stopped = True

    def progress(self) -> ReaderProgress:
        return ReaderProgress(
            phase=Phase.FULL,
            bytes_read=self._bytes_read,
            bytes_total=self._bytes_total,
            keys_read=sum(p.keys_read for p in self._pumps),
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
        """One file; its entries' offsets shifted by ``base``, the bytes of the files before it."""
        pump = RdbPump(name, self.context)
        self._pumps.append(pump)
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
                for batch in pump.feed(data):
                    yield _shifted(batch, base)
                    if self._stopped:
                        return
            pump.close()
        except RdbFormatError:
            if pump.batch:  # every whole key before the damage is kept; the error names the offset
                yield _shifted(pump.take(), base)
            raise
        if pump.batch:
            yield _shifted(pump.take(), base)


def _shifted(batch: list[Entry], base: int) -> list[Entry]:
    if base:
        for e in batch:
            e.source_offset += base
    return batch
