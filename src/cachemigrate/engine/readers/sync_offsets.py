"""Where a replica stands, in offsets the writer can compare, and the checkpoint each one means.

Internal offsets. Entries carry the replication offset plus ``base``. ``base`` only moves when a
full resync starts at an offset not above one already handed out (a different replid, e.g. the
source restarted; or offset 0 of a fresh master), so that the writer's applied offset (a running
maximum, 0 at start) keeps meaning "everything up to here is applied". ``checkpoint()`` and
``position()`` convert back.

The full phase. Every RDB entry carries the FULLRESYNC offset minus one except the very last one
(or a PING when the RDB has no keys), which carries the FULLRESYNC offset: the checkpoint turns
"incremental" only when the writer has applied the whole RDB. A PSYNC cannot continue a half
loaded RDB, so until then the checkpoint says phase "full" and a resume re-does the full sync.
"""

from __future__ import annotations

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.engine.commands import CommandMapper


class ReplicaOffsets:
    """The internal offsets of one replica of ``source``; ``mapper`` knows the db at each."""

    def __init__(self, source: str, mapper: CommandMapper, start: Checkpoint | None) -> None:
        self.source = source
        self.mapper = mapper
        self.start = start
        self.base = 0
        self.replid: str | None = None  # set once a PSYNC may continue from ``delivered``
        self.delivered = -1  # internal offset of the last entry handed out
        self.full_end: int | None = None  # internal FULLRESYNC offset of the last full sync
        self.floor = -1  # nothing below the checkpoint resumed from is ever asked for again
        self.applied: int | None = None  # what the pipeline last reported applied
        if start is not None and start.phase != "full":
            db = int(start.extra.get("db", 0))
            self.replid = start.replid
            self.delivered = self.floor = start.offset
            mapper.reset(db=db, offset=start.offset)

    def replication(self, internal: int) -> int:
        """The replication offset an internal offset stands for."""
        return internal - self.base

    def internal(self, replication: int) -> int:
        return replication + self.base

    def begin_full(self, fullresync: int) -> tuple[int, bool]:
        """A full sync from replication offset ``fullresync`` starts: its internal end offset, and
        whether ``base`` moved (offsets from before are of another history)."""
        # Internal offsets stay above everything handed out before and above the writer's
        # initial applied offset (0), so "applied >= end" means "the whole RDB is applied".
        floor = max(self.delivered, 0)
        moved = fullresync + self.base <= floor
        if moved:
            self.base = floor - fullresync + 1
        end = self.full_end = fullresync + self.base
        self.replid = None
        return end, moved

    def end_full(self, replid: str, stream_db: int) -> None:
        """The whole RDB is handed out: the stream continues from its end, in ``stream_db``."""
        assert self.full_end is not None
        self.delivered = self.full_end
        self.replid = replid
        self.mapper.reset(db=stream_db, offset=self.full_end)

    def continued(self, replid: str) -> None:
        """A PSYNC continued the stream after ``delivered``."""
        self.replid = replid
        d = self.delivered
        self.mapper.reset(db=self.mapper.db_at(d), offset=d)

    def checkpoint(self, applied_offset: int) -> Checkpoint | None:
        """The checkpoint once the writer has applied up to ``applied_offset`` (the one resumed
        from while none is known); db change points no checkpoint can ask for are dropped."""
        applied = self.applied = max(applied_offset, self.floor)
        cp = self.position(applied)
        if cp is None:
            return self.start
        if cp.phase == "incremental":
            self.mapper.forget_before(applied)
        return cp

    def position(self, offset: int) -> Checkpoint | None:
        """The checkpoint the internal ``offset`` stands for, without side effects (the marker
        of engine/exactly_once.py); None when not known (no stream yet)."""
        applied = max(offset, self.floor)
        end = self.full_end
        if end is not None and applied < end:
            return Checkpoint(self.source, self.replid or "", end - self.base, phase="full")
        if self.replid is None or applied < 0:
            return None
        return Checkpoint(self.source, self.replid, applied - self.base, phase="incremental",
                          extra={"db": self.mapper.db_at(applied)})
