"""Reader over AOF backups: plain AOF, AOF with an RDB preamble, Redis 7 multi-part AOF, archives.

Each path is one of: a file (RDB, plain AOF, or RDB preamble + RESP tail, told apart by its
first bytes like the server does); a multi-part AOF directory or its ``.manifest`` (the base,
then every incr file in manifest order; history files are never replayed); an archive
(``sources.archive_kind``) whose members are each read as a file. The RDB part goes through the
RDB parser and the pipeline's transform (RESTORE fast path); commands are sent as they are, with
SELECT turned into ``Entry.db`` through the same transform's db mapping.

Loading rules follow ``loadSingleAppendOnlyFile``: a MULTI ... EXEC block is sent whole (one
batch, so a cluster writer can route it); a partial last command or an unfinished MULTI at the end
of the last file of a set is dropped with a warning and the import ends at the last whole command
(``aof-load-truncated yes``); the same in an earlier file of a multi-part set, or damage anywhere,
is an error naming the file and offset, raised after every whole command before it was yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.confine import shown
from cachemigrate.engine.entry import Entry
from cachemigrate.engine.readers._aof_load import FileLoad, SourceProgress
from cachemigrate.engine.readers.base import ReaderContext, ReaderProgress, RecordTransform
from cachemigrate.engine.sources import BucketFiles, CountingReader, Source, archive_kind, archive_members
from cachemigrate.engine.status import LogLevel, Phase
from cachemigrate.errors import AofFormatError, ConfigError, FormatError
from cachemigrate.formats.aof import parse_manifest
from cachemigrate.formats.rdb.model import RdbHeader

__all__ = ["AofFileReader", "SourceProgress", "Unit", "plan"]

CHUNK = 8 << 20
BATCH_ENTRIES = 2048
BATCH_BYTES = 4 << 20
_MANIFEST_MAX = 1 << 20
_COMMANDS_HEADER = RdbHeader("REDIS", 9)  # the transform of a file without RDB: only its db mapping


@dataclass(frozen=True, slots=True)
class Unit:
    """One file to read: a name of the reader's ``BucketFiles``."""

    path: str
    archive: bool = False
    last_of_set: bool = True  # a truncated tail is accepted only in the last file of a set
    set_name: str = ""  # the manifest, for files of a multi-part set


class AofFileReader:
    """Reads each path in turn; entries carry the byte offset reached across all sources."""

    source_kind = "aof_file"

    def __init__(
        self,
        paths: Sequence[str],
        context: ReaderContext,
        *,
        files: BucketFiles | None = None,
        read_hook: Callable[[int], object] | None = None,
        accelerated: bool | None = None,
    ) -> None:
        self.paths = list(paths)
        self.context = context
        self.events = context.events
        self.files = files or BucketFiles()  # where the paths are; every file is opened through it
        self.read_hook = read_hook  # awaited per chunk when it returns an awaitable (bandwidth)
        self.accelerated = accelerated
        self.sources: list[SourceProgress] = []  # one per file or archive member, as reached
        self.truncated: list[SourceProgress] = []
        self._stopped = False
        self._bytes_read = 0  # raw bytes of finished units (compressed for archives)
        self._unit_read: Callable[[], int] = lambda: 0
        self._bytes_total: int | None = None
        self._sizes: list[int | None] = []
        self._offset = 0  # cumulative (decompressed) offset across sources
        self._command_tf: RecordTransform | None = None

    def stop(self) -> None:
        self._stopped = True

    def progress(self) -> ReaderProgress:
        cur = self.sources[-1] if self.sources else None
        keys = sum(s.keys for s in self.sources)
        commands = sum(s.commands for s in self.sources)
        done = self._bytes_read + self._unit_read()
        if self._bytes_total is not None:
            done = min(done, self._bytes_total)  # a zip's directory is read more than once
        return ReaderProgress(
            phase=Phase.FULL,
            bytes_read=done,
            bytes_total=self._bytes_total,
            keys_read=keys + commands,
            message=f"{cur.name}: {cur.keys} keys, {cur.commands} commands" if cur else "",
        )

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        return None  # a file import is re-run from the start

    # ---- planning ------------------------------------------------------------------------

    def _plan(self) -> list[Unit]:
        units = plan(self.files, self.paths)
        self._sizes = [self.files.size(u.path) for u in units]
        self._total()
        return units

    def _total(self) -> None:
        sizes = self._sizes
        self._bytes_total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)

    # ---- reading -------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Entry]]:
        loop = asyncio.get_running_loop()
        units = await loop.run_in_executor(None, self._plan)
        for i, unit in enumerate(units):
            fh, size, name = await loop.run_in_executor(None, self.files.open, unit.path)
            if size is not None:
                self._sizes[i] = size
                self._total()
            what = "archive" if unit.archive else "file"
            self.events.log(LogLevel.INFO, f"{name}: reading {what}" + (f" ({size} bytes)" if size else ""))
            try:
                if unit.archive:
                    counting = CountingReader(fh)
                    self._unit_read = counting.tell_count
                    async for batch in self._archive(counting, name):
                        yield batch
                        if self._stopped:
                            return
                else:
                    src = SourceProgress(name, size)
                    self._unit_read = src.read_so_far
                    async for batch in self._file(fh, src, unit.last_of_set):
                        yield batch
                        if self._stopped:
                            return
            finally:
                self._bytes_read += self._unit_read()
                self._unit_read = lambda: 0
                await loop.run_in_executor(None, fh.close)

    async def _archive(self, fh: CountingReader, name: str) -> AsyncIterator[list[Entry]]:
        loop = asyncio.get_running_loop()
        kind = archive_kind(name)
        assert kind is not None
        members: Generator[Source, None, None] = archive_members(cast(BinaryIO, fh), name, kind)
        try:
            while True:
                item: Source | None = await loop.run_in_executor(None, next, members, None)
                if item is None:
                    return
                mfh, msize, mname = item
                if mname.endswith(".manifest"):
                    self.events.log(LogLevel.WARNING, f"{mname}: multi-part AOF manifests inside an "
                                    "archive are not followed; its files are read in archive order")
                    continue
                self.events.log(LogLevel.INFO, f"{mname}: reading archive member"
                                + (f" ({msize} bytes)" if msize else ""))
                async for batch in self._file(mfh, SourceProgress(mname, msize), True, skip_unknown=True):
                    yield batch
                    if self._stopped:
                        return
        finally:
            members.close()  # leaves the archive's context managers

    async def _file(
        self, fh: BinaryIO, src: SourceProgress, last: bool, *, skip_unknown: bool = False
    ) -> AsyncIterator[list[Entry]]:
        self.sources.append(src)
        load = FileLoad(src, self.context, base=self._offset, last=last, command_tf=self._commands_transform,
                        accelerated=self.accelerated)
        loop = asyncio.get_running_loop()
        batch: list[Entry] = []
        nbytes = 0
        try:
            while True:
                # In a thread: a bucket or archive stream may block while replies are read.
                data = await loop.run_in_executor(None, fh.read, CHUNK)
                if not data:
                    break
                if self.read_hook is not None:
                    pending = self.read_hook(len(data))
                    if asyncio.iscoroutine(pending):
                        await pending
                for group in load.feed(data):
                    batch += group
                    nbytes += sum(e.size or 64 for e in group)
                    if len(batch) >= BATCH_ENTRIES or nbytes >= BATCH_BYTES:
                        yield batch
                        batch, nbytes = [], 0
                        if self._stopped:
                            return
            for group in load.finish():
                batch += group
        except FormatError as exc:  # AOF damage, or an RDB part cut short or damaged
            if skip_unknown and load.unknown and isinstance(exc, AofFormatError):
                self.events.log(LogLevel.WARNING, f"{src.name}: not an RDB or AOF file, skipped")
                src.state = "skipped"
                return
            for group in load.rest():
                batch += group
            if batch:
                yield batch  # every whole command and key before the damage is kept
            src.state = "failed"
            raise
        finally:
            self._offset += src.bytes_read
        if src.state == "truncated":
            self.truncated.append(src)
        if batch:
            yield batch

    def _commands_transform(self) -> RecordTransform:
        if self._command_tf is None:
            self._command_tf = self.context.transform_factory(_COMMANDS_HEADER)
        return self._command_tf


def plan(files: BucketFiles, paths: Sequence[str]) -> list[Unit]:
    """The files ``paths`` make an AOF reader read, each checked by ``files`` (in its bucket).

    A directory is its one ``*.manifest``; a manifest is the files it lists, in order (it is read:
    at most 1 MiB). Nothing else is read, so the service checks an import with this before it
    accepts the task.
    """
    units: list[Unit] = []
    for given in paths:
        archive = archive_kind(given)  # by name: refuses the formats we do not read, first
        path = _find_manifest(files, given) if archive is None and files.is_dir(given) else given
        if path.endswith(".manifest"):
            units += _manifest_units(files, path)
        elif archive_kind(path) is not None:
            files.check_file(path)
            units.append(Unit(path, archive=True))
        else:
            files.check_file(path)
            units.append(Unit(path))
    return units


def _manifest_units(files: BucketFiles, path: str) -> list[Unit]:
    fh, _, name = files.open(path)
    try:
        data = fh.read(_MANIFEST_MAX + 1)
    finally:
        fh.close()
    if len(data) > _MANIFEST_MAX:
        raise AofFormatError("AOF manifest is too large", offset=_MANIFEST_MAX, source=name)
    listed = parse_manifest(data, source=name).replay
    units = []
    for i, f in enumerate(listed):
        try:
            member = files.beside(path, f.name)
            files.check_file(member)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (listed in {name})") from None
        units.append(Unit(member, False, i == len(listed) - 1, name))
    return units


def _find_manifest(files: BucketFiles, folder: str) -> str:
    found = [f for f in files.entries(folder) if f.endswith(".manifest")]
    if len(found) != 1:
        what = "no *.manifest" if not found else f"several manifests ({', '.join(shown(f) for f in found)})"
        raise ConfigError(f"{shown(folder)}: {what}; give the multi-part AOF's manifest file")
    return files.inside(folder, found[0])
