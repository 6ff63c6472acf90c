"""The replication command stream as entries: SELECT folded into ``Entry.db``, db mapping, MULTI
groups kept whole, replication-only commands dropped.

Offsets: an entry's ``source_offset`` is the replication offset reached once it is applied. The
commands inside a MULTI group carry the offset from *before* the MULTI and only the EXEC carries
the offset after it, so a writer that has applied half a transaction never reports an offset
from which a resume would replay its tail without its MULTI.
"""

from __future__ import annotations

from typing import cast

from cachemigrate.engine.entry import Arg, Command, Entry
from cachemigrate.engine.spec import DbMode, PipelineOptions

# Commands a master sends that mean nothing to a target.
_DROP = frozenset({b"ping", b"replconf", b"select"})
# Commands without a key argument (routed to every cluster master / any db by the writers).
_KEYLESS = frozenset({
    b"multi", b"exec", b"discard", b"flushall", b"flushdb", b"script", b"function", b"publish",
    b"swapdb", b"lastsave", b"save", b"bgsave", b"bgrewriteaof", b"info", b"debug", b"config",
})  # fmt: skip
_ANY_DB = frozenset({b"flushall", b"script", b"function", b"publish", b"swapdb"})
_NUMKEYS_AT_2 = frozenset({b"eval", b"evalsha", b"eval_ro", b"evalsha_ro", b"fcall", b"fcall_ro"})


def command_key(name: bytes, argv: list[bytes]) -> bytes | None:
    """The first key of a command (what a cluster writer routes on), None when it has none."""
    if name in _KEYLESS or len(argv) < 2:
        return None
    if name in _NUMKEYS_AT_2:
        try:
            numkeys = int(argv[2])
        except (IndexError, ValueError):
            return None
        return argv[3] if numkeys > 0 and len(argv) > 3 else None
    return argv[1]


class CommandMapper:
    """Turns (argv, offset after it) pairs into entries for the target; keeps the source db."""

    def __init__(self, options: PipelineOptions, *, db: int = 0) -> None:
        self.options = options
        self.source_db = db
        self._group: list[Entry] | None = None  # an open MULTI group
        self._group_base = 0
        self.last_offset = 0  # offset after the last command seen (dropped ones included)
        self.db_changes: list[tuple[int, int]] = []  # (offset after a SELECT, db it selected)
        self.dropped = 0

    @property
    def in_multi(self) -> bool:
        return self._group is not None

    def reset(self, *, db: int, offset: int) -> None:
        """A new stream starts (after a full sync, or a resume) at ``offset`` in ``db``."""
        self.source_db = db
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

    def _target_db(self) -> int | None:
        o = self.options
        if o.db_mode is DbMode.FOLD:
            return 0
        if o.db_mode is DbMode.ONLY:
            if self.source_db != o.db:
                return None
            return self.source_db if o.target_db is None else o.target_db
        return self.source_db

    def map(self, argv: list[bytes], offset: int) -> list[Entry]:
        """Entries that became complete with this command (a whole group at its EXEC)."""
        before = self.last_offset
        self.last_offset = offset
        name = bytes(argv[0]).lower()
        if name in _DROP:
            if name == b"select" and len(argv) > 1:
                self.source_db = int(argv[1])
                self.db_changes.append((offset, self.source_db))
            return []
        if name == b"multi":
            self._group = [_entry([argv[0]], -1, None, before)]
            self._group_base = before
            return []
        if name == b"exec":
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
        return [entry]

    def _entry(self, name: bytes, argv: list[bytes], offset: int) -> Entry | None:
        db = self._target_db()
        mode = self.options.db_mode
        if name == b"flushall":
            if mode is DbMode.ONLY:
                db = self.options.db if self.options.target_db is None else self.options.target_db
                return _entry([b"FLUSHDB"], db or 0, None, offset)
            return _entry(argv, -1, None, offset)
        if db is None:
            return None
        if name in _ANY_DB:
            return _entry(argv, -1, None, offset)
        return _entry(argv, db, command_key(name, argv), offset)


def _entry(argv: list[bytes], db: int, key: bytes | None, offset: int) -> Entry:
    return Command(cast(list[Arg], argv), db, key, 0, offset)
