"""The replication command stream as entries: SELECT folded into ``Entry.db``, db mapping, MULTI
groups kept whole, replication-only commands dropped.

Runs. Where no command needs looking at one by one (no filter rules on keys or commands, no
script) and the writer takes them (a standalone target), the stream's framing scan
(``protocol/frames.py``) hands over runs of commands as the bytes the source sent; ``map_run``
makes one ``PackedRun`` of each, in the db the stream is in (mapped), with no object per command.
Only the commands named in ``STREAM_SPECIAL`` are parsed and go through ``map``: those that change
the db, group, flush or swap databases, or run in any db. A run in a db the db mode leaves out is
dropped whole.

Offsets: an entry's ``source_offset`` is the replication offset reached once it is applied. The
commands inside a MULTI group carry the offset from *before* the MULTI and only the EXEC carries
the offset after it, so a writer that has applied half a transaction never reports an offset
from which a resume would replay its tail without its MULTI.
"""

from __future__ import annotations

from typing import Final, cast

from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.entry import Arg, Command, Entry, PackedRun
from cachemigrate.engine.filters import Filter, compile_rules
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink

# Commands a master sends that mean nothing to a target.
_DROP = frozenset({b"PING", b"REPLCONF", b"SELECT"})
# Commands for every database (db -1): a writer sends them wherever its connection stands.
_ANY_DB = frozenset({b"SCRIPT", b"FUNCTION", b"PUBLISH"})

# What ``map`` must see one by one (everything else may pass as a run): the above, transactions,
# whole-db commands (the exactly-once marker must know about FLUSHDB too).
STREAM_SPECIAL: Final = (
    b"PING", b"REPLCONF", b"SELECT", b"MULTI", b"EXEC", b"FLUSHALL", b"FLUSHDB", b"SWAPDB",
    b"SCRIPT", b"FUNCTION", b"PUBLISH",
)  # fmt: skip

# ---- key positions ---------------------------------------------------------------------------

# Commands that touch no key (a cluster writer sends them to every master).
NO_KEY_COMMANDS: Final = frozenset({
    b"FLUSHALL", b"FLUSHDB", b"FUNCTION", b"SCRIPT", b"MULTI", b"EXEC", b"DISCARD", b"SELECT",
    b"SWAPDB", b"PING", b"PUBLISH", b"CLIENT", b"CONFIG", b"DEBUG", b"INFO", b"LASTSAVE", b"SAVE",
    b"BGSAVE", b"BGREWRITEAOF",
})  # fmt: skip
# First key after the subcommand / operation.
_KEY_AT_2: Final = frozenset({b"BITOP", b"XGROUP", b"OBJECT", b"MEMORY"})
# "numkeys key ...": where numkeys is (the first key follows it).
_NUMKEYS_AT: Final = {
    b"EVAL": 2, b"EVALSHA": 2, b"EVAL_RO": 2, b"EVALSHA_RO": 2, b"FCALL": 2, b"FCALL_RO": 2,
    b"BLMPOP": 2, b"BZMPOP": 2,
    b"LMPOP": 1, b"ZMPOP": 1, b"SINTERCARD": 1, b"ZINTERCARD": 1, b"ZUNION": 1, b"ZINTER": 1,
    b"ZDIFF": 1,
}  # fmt: skip


def command_key(argv: list[bytes], name: bytes | None = None) -> bytes | None:
    """The first key a command touches (what a cluster routes on), None when it has none.

    ``name`` is ``argv[0].upper()`` when the caller has it already.
    """
    if name is None:
        name = bytes(argv[0]).upper()
    if name in NO_KEY_COMMANDS:
        return None
    if name in _KEY_AT_2:
        return argv[2] if len(argv) > 2 else None
    at = _NUMKEYS_AT.get(name)
    if at is not None:
        try:
            numkeys = int(argv[at]) if len(argv) > at else 0
        except ValueError:
            return None
        return argv[at + 1] if numkeys > 0 and len(argv) > at + 1 else None
    return argv[1] if len(argv) > 1 else None


class CommandMapper:
    """Turns (argv, offset after it) pairs into entries for the target; keeps the source db."""

    def __init__(self, options: PipelineOptions, *, db: int = 0, events: EventSink | None = None) -> None:
        self.options = options
        self.dbmap = DbMap(options)
        # The filter rules of commands (engine/filters.py); None: every command goes.
        self.filter: Filter | None = compile_rules(options.filters, events)
        if self.filter is not None and not self.filter.has_commands:
            self.filter = None
        self.source_db = db
        self._tdb = self.dbmap.target(db)  # target db of source_db (None: left out)
        self._group: list[Entry] | None = None  # an open MULTI group
        self._group_base = 0
        self.last_offset = 0  # offset after the last command seen (dropped ones included)
        self.db_changes: list[tuple[int, int]] = []  # (offset after a SELECT, db it selected)
        self.dropped = 0
        self._extra: list[Entry] = []

    @property
    def runs(self) -> bool:
        """Whether the stream may come as runs (``map_run``): no filter looks at its commands."""
        return self.filter is None

    @property
    def in_multi(self) -> bool:
        return self._group is not None

    def reset(self, *, db: int, offset: int) -> None:
        """A new stream starts (after a full sync, or a resume) at ``offset`` in ``db``."""
        self.source_db = db
        self._tdb = self.dbmap.target(db)
        self._group = None
        self.last_offset = offset
        self.db_changes = [(offset, db)]

    def db_at(self, offset: int) -> int:
        """The source db in effect once the stream was applied up to ``offset``."""
        found = self.db_changes[0][1] if self.db_changes else self.source_db
        for at, d in self.db_changes:
            if at > offset:
                break
            found = d
        return found

    def forget_before(self, offset: int) -> None:
        """Drop db change points no checkpoint can ask for any more (keep the one in force)."""
        changes = self.db_changes
        k = 0
        while k + 1 < len(changes) and changes[k + 1][0] <= offset:
            k += 1
        if k:
            del changes[:k]

    def map(self, argv: list[bytes], offset: int) -> list[Entry]:
        """Entries that became complete with this command (a whole group at its EXEC)."""
        before = self.last_offset
        self.last_offset = offset
        name = bytes(argv[0]).upper()
        if name in _DROP:
            if name == b"SELECT" and len(argv) > 1:
                self.source_db = int(argv[1])
                self._tdb = self.dbmap.target(self.source_db)
                self.db_changes.append((offset, self.source_db))
            return []
        if name == b"MULTI":
            self._group = [_entry([argv[0]], -1, None, before)]
            self._group_base = before
            return []
        if name == b"EXEC":
            group, self._group = self._group, None
            if not group or len(group) == 1:
                return []  # nothing of it is for this target
            group[0].db = group[1].db
            group.append(_entry(argv, group[1].db, None, offset))
            return group
        entry = self._entry(name, argv, offset)
        if entry is None:
            self.dropped += 1
            return []
        if self._group is not None:
            entry.source_offset = self._group_base
            self._group.append(entry)
            return []
        if self._extra:  # a script sent several commands for this one
            out, self._extra = [*self._extra, entry], []
            for e in out[:-1]:
                e.source_offset = before  # only the last one completes the source command
            return out
        return [entry]

    def map_run(self, wire: bytes, count: int, offset: int) -> list[Entry]:
        """``count`` commands none of which is in ``STREAM_SPECIAL``, packed in ``wire``, as one
        entry (in the open MULTI group, if any); ``offset`` is the one after the last of them."""
        self.last_offset = offset
        db = self._tdb
        if db is None:
            self.dropped += count
            return []
        if self._group is not None:
            self._group.append(PackedRun(wire, len(wire), count, db, self._group_base, "", b""))
            return []
        return [PackedRun(wire, len(wire), count, db, offset, "", b"")]

    def _entry(self, name: bytes, argv: list[bytes], offset: int) -> Entry | None:
        if name == b"FLUSHALL":
            flushall = self.dbmap.flushall(cast("list[Arg]", argv))
            if flushall is None or (self.filter is not None and self.filter.command(argv, name, -1) == []):
                return None
            return Command(flushall[0], flushall[1], None, 0, offset)
        if name == b"SWAPDB" and not self.dbmap.swapdb:
            return None
        db = self._tdb
        if db is None:
            return None
        any_db = name in _ANY_DB or name == b"SWAPDB"
        if self.filter is not None:
            out = self.filter.command(argv, name, db)
            if out is not None:
                return self._filtered(out, offset, any_db)
        if any_db:
            return _entry(argv, -1, None, offset)
        return _entry(argv, db, command_key(argv, name), offset)

    def _filtered(self, out: list[tuple[list[bytes], int]], offset: int, any_db: bool) -> Entry | None:
        """The commands the filter sends for one: one entry each (a MULTI group takes them all)."""
        if not out:
            return None
        entries = [_entry(a, -1 if any_db else d, None if any_db else command_key(a), offset) for a, d in out]
        if len(entries) == 1:
            return entries[0]
        if self._group is not None:  # all but the last go in the open group here
            for e in entries[:-1]:
                e.source_offset = self._group_base
                self._group.append(e)
            return entries[-1]
        self._extra += entries[:-1]
        return entries[-1]


def _entry(argv: list[bytes], db: int, key: bytes | None, offset: int) -> Entry:
    return Command(cast(list[Arg], argv), db, key, 0, offset)
