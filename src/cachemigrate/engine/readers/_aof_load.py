"""Loading one AOF-family file (``aof_file`` reads bytes and batches; this turns them into entries).

The first bytes decide, like the server: ``REDIS``/``VALKEY`` starts an RDB (a multi-part base, a
preamble, or a plain RDB file) that goes through the RDB parser and the transform; whatever follows
its checksum, or a file starting with ``*`` / ``#``, is split into commands by
``formats.aof.AofSplitter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from cachemigrate.engine.commands import command_key
from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.entry import Arg, Command, Entry
from cachemigrate.engine.filters import compile_rules
from cachemigrate.engine.readers.base import ReaderContext, RecordTransform
from cachemigrate.engine.readers.rdb_pump import RdbPump
from cachemigrate.engine.status import LogLevel
from cachemigrate.errors import AofFormatError
from cachemigrate.formats.aof import AofCommand, AofSplitter, is_rdb_start

GROUP_ENTRIES = 2048
_SNIFF = 6  # len("VALKEY")
_ANY_DB: Final = frozenset({b"FUNCTION", b"SCRIPT"})


@dataclass(slots=True)
class SourceProgress:
    """One file or archive member: its own progress (``AofFileReader.sources``)."""

    name: str
    size: int | None
    bytes_read: int = 0
    keys: int = 0  # keys of its RDB part
    commands: int = 0  # commands of its RESP part (SELECT and MULTI/EXEC included)
    rdb_end: int | None = None  # where its RDB part ended (the RESP tail starts there)
    state: str = "reading"  # reading, done, truncated, failed, skipped

    def read_so_far(self) -> int:
        return self.bytes_read


class FileLoad:
    """Feed one file's bytes in order; get groups of entries (a MULTI block never spans groups)."""

    def __init__(
        self,
        src: SourceProgress,
        context: ReaderContext,
        *,
        base: int,
        last: bool,
        command_tf: Callable[[], RecordTransform],
        accelerated: bool | None = None,
    ) -> None:
        self.src = src
        self.context = context
        self.events = context.events
        self.base = base  # offset of this file's first byte across every source of the reader
        self.last = last
        self.command_tf = command_tf
        self.accelerated = accelerated
        self.unknown = False  # the file is neither RDB nor AOF
        self._head = b""
        self._started = False
        self._pump: RdbPump | None = None  # while in the RDB part
        self._splitter: AofSplitter | None = None
        self._tf: RecordTransform | None = None  # the RDB part's, once its header is read
        self._fed = 0
        self._map: DbMap | None = None
        self._tdb: int | None = 0  # target db of the commands that follow (None: filtered out)
        self._multi: list[Entry] | None = None
        self._multi_at = 0
        self._out: list[list[Entry]] = []
        self._cur: list[Entry] = []
        self._warned_swapdb = False
        flt = compile_rules(context.options.filters, context.events)
        self._filter = flt if flt is not None and flt.has_commands else None

    # ---- bytes in ------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[list[Entry]]:
        self.src.bytes_read += len(data)
        if not self._started:
            self._head += data
            if len(self._head) < _SNIFF:
                return []
            data, self._head = self._head, b""
            self._start(data)
        self._fed += len(data)
        if self._pump is not None:
            self._rdb(data)
        else:
            assert self._splitter is not None
            self._splitter.feed(data)
            self._commands(self._splitter.commands())
        return self._take()

    def finish(self) -> list[list[Entry]]:
        if not self._started:
            if not self._head:
                self.src.state = "done"
                return []
            data, self._head = self._head, b""
            self._start(data)
            self._fed += len(data)
            (self._rdb if self._pump is not None else self._resp_tail)(data)
        if self._pump is not None:
            self._pump.close()  # the RDB part is incomplete: RdbFormatError names the offset
        assert self._splitter is not None
        trunc = self._splitter.close()
        name = self.src.name
        if trunc is not None or self._multi is not None:
            parts = []
            if trunc is not None:
                parts.append(f"ends inside a command at offset {trunc.offset} ({trunc.nbytes} bytes of it)")
            if self._multi is not None:
                parts.append(f"ends inside a MULTI block started at offset {self._multi_at}")
            what = " and ".join(parts)
            at = self._multi_at if self._multi is not None or trunc is None else trunc.offset
            if not self.last:
                raise AofFormatError(f"AOF {what}, and it is not the last file of its set",
                                     offset=at, source=name)
            if self._multi is not None:
                what += f"; its {len(self._multi) - 1} queued commands are rolled back"
            self.events.log(LogLevel.WARNING, f"{name}: AOF {what}; the import stops at the last whole "
                            "command (like aof-load-truncated)")
            self._multi = None
            self.src.state = "truncated"
        else:
            self.src.state = "done"
        return self._take()

    def _start(self, data: bytes) -> None:
        self._started = True
        if is_rdb_start(data):
            self._pump = RdbPump(self.src.name, self.context)
        elif data[:1] in (b"*", b"#"):
            self._splitter = AofSplitter(source=self.src.name, accelerated=self.accelerated)
        else:
            self.unknown = True
            raise AofFormatError(f"not an RDB or AOF file (starts with {data[:8]!r})", offset=0,
                                 source=self.src.name)

    # ---- the RDB part --------------------------------------------------------------------

    def _rdb(self, data: bytes) -> None:
        pump = self._pump
        assert pump is not None
        try:
            for group in pump.feed(data):
                self._out.append(self._shifted(group))
        finally:
            self.src.keys = pump.keys_read
            self._tf = pump.transform  # the commands after the preamble use its db mapping
        if pump.parser.done:
            self._cur += self._shifted(pump.take())
            tail = pump.parser.remainder()
            self.src.rdb_end = self._fed - len(tail)
            self._pump = None
            self._splitter = AofSplitter(source=self.src.name, base_offset=self.src.rdb_end,
                                         accelerated=self.accelerated)
            self._resp_tail(tail)

    def _shifted(self, entries: list[Entry]) -> list[Entry]:
        if self.base:
            for e in entries:
                e.source_offset += self.base
        return entries

    def _resp_tail(self, data: bytes) -> None:
        assert self._splitter is not None
        self._splitter.feed(data)
        self._commands(self._splitter.commands())

    # ---- commands ------------------------------------------------------------------------

    def _dbmap(self) -> DbMap:
        """The transform's db mapping: the commands follow the same rules as the RDB keys."""
        if self._map is None:
            self._map = (self._tf or self.command_tf()).dbmap
        return self._map

    def _commands(self, cmds: list[AofCommand]) -> None:
        base = self.base
        self.src.commands += len(cmds)
        for c in cmds:
            name = c.argv[0].upper()
            if name in _SPECIAL:
                e = self._special(name, c)
                if e is None:
                    continue
            else:
                if self._tdb is None:
                    continue  # a source db the options leave out
                if self._filter is not None:
                    out = self._filter.command(c.argv, name, self._tdb)
                    if out is not None:
                        for new, db in out:
                            self._add(Command(cast("list[Arg]", new), db, command_key(new), 0, base + c.end))
                        continue
                argv = cast("list[Arg]", c.argv)
                e = Command(argv, self._tdb, command_key(c.argv, name), c.size, base + c.end)
            self._add(e)

    def _add(self, e: Entry) -> None:
        if self._multi is not None:
            e.source_offset = self.base + self._multi_at  # a block is done only once EXEC is in
            self._multi.append(e)
        else:
            self._cur.append(e)
            if len(self._cur) >= GROUP_ENTRIES:
                self._out.append(self._cur)
                self._cur = []

    def _special(self, name: bytes, c: AofCommand) -> Entry | None:
        argv = cast("list[Arg]", c.argv)
        end = self.base + c.end
        if name == b"SELECT":
            try:
                self._tdb = self._dbmap().target(int(c.argv[1]))
            except (IndexError, ValueError):
                raise AofFormatError(f"bad SELECT {argv[1:2]!r}", offset=c.offset,
                                     source=self.src.name) from None
            return None
        if name == b"MULTI":
            if self._multi is None:
                self._multi_at = c.offset
                db = -1 if self._tdb is None else self._tdb
                self._multi = [Command(argv, db, None, c.size, self.base + c.offset)]
            return None
        if name in (b"EXEC", b"DISCARD"):
            block, self._multi = self._multi, None
            if block is not None and name == b"EXEC" and len(block) > 1:
                block.append(Command(argv, -1, None, c.size, end))
                self._cur += block
            return None
        if self._filter is not None and self._filter.command(c.argv, name, -1) == []:
            return None  # blocked by a command or group rule (or the script)
        if name == b"FLUSHALL":
            flushall = self._dbmap().flushall(argv)
            if flushall is None:
                return None  # db rules (engine/dbmap.py)
            return Command(flushall[0], flushall[1], None, c.size, end)
        if name == b"SWAPDB":
            if self._dbmap().swapdb:
                return Command(argv, -1, None, c.size, end)
            if not self._warned_swapdb:
                self._warned_swapdb = True
                self.events.log(LogLevel.WARNING, f"{self.src.name}: SWAPDB at offset {c.offset} "
                                "skipped: it cannot be mapped with this db mode")
            return None
        # FUNCTION, SCRIPT: every database
        return Command(argv, -1, None, c.size, end)

    def rest(self) -> list[list[Entry]]:
        """What was read but not returned when ``feed`` or ``finish`` raised: the entries of every
        whole record and command before the damage."""
        if self._pump is not None and self._pump.batch:
            self._cur += self._shifted(self._pump.take())
        return self._take()

    def _take(self) -> list[list[Entry]]:
        if self._cur:
            self._out.append(self._cur)
            self._cur = []
        out, self._out = self._out, []
        return out


_SPECIAL: Final = frozenset({b"SELECT", b"MULTI", b"EXEC", b"DISCARD", b"FLUSHALL", b"SWAPDB"}) | _ANY_DB
