"""The writer role: what the pipeline hands entries to. One module per implementation beside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cachemigrate.engine.entry import Entry
from cachemigrate.engine.status import KeyFailure


@dataclass(frozen=True, slots=True)
class WriterOptions:
    """How a writer talks to its target.

    ``replace`` only says what the entries were built for: with ``replace=False`` a BUSYKEY reply
    (RESTORE onto an existing key) counts as a skipped key; with True it is a failure.
    ``batch_bytes`` is the size of one socket write. ``on_failure`` sees every failure as it
    arrives (it must not block). At most ``failures_kept`` failures are kept in ``failures``; the
    counters always count them all. ``multi_db`` declares that entries may target db != 0; it is
    informational: a cluster writer refuses the first entry for a db other than 0 with
    IncompatibleTargetError, before sending it (the default db mode declares multi_db even for
    sources that only have db 0, so refusing at start would refuse every cluster target).
    """

    replace: bool = True
    max_bytes_in_flight: int = 64 << 20
    batch_bytes: int = 2 << 20
    on_failure: Callable[[KeyFailure], None] | None = None
    failures_kept: int = 10_000
    multi_db: bool = False
    client_name: str | None = "cachemigrate"
    accelerated: bool | None = None  # hiredis reply parsing (None: when installed)


@dataclass(slots=True)
class WriterStats:
    """Live counters of one writer (copy them into a StatusSnapshot, never hand this out)."""

    commands_written: int = 0  # commands whose reply has arrived (SELECTs we add excluded)
    commands_failed: int = 0
    keys_written: int = 0  # entries with a tag whose reply was not an error
    keys_skipped: int = 0  # BUSYKEY with replace off: the key already in the target is kept
    keys_failed: int = 0  # entries with a tag that failed
    bytes_written: int = 0  # bytes handed to the socket
    applied_offset: int = 0  # source offset up to which every reply has arrived

    def add(self, other: WriterStats) -> None:
        self.commands_written += other.commands_written
        self.commands_failed += other.commands_failed
        self.keys_written += other.keys_written
        self.keys_skipped += other.keys_skipped
        self.keys_failed += other.keys_failed
        self.bytes_written += other.bytes_written


@dataclass(slots=True)
class FailureLog:
    """Failures kept for the summary (bounded) and counted (unbounded)."""

    kept: int = 10_000
    items: list[KeyFailure] = field(default_factory=list)
    count: int = 0

    def add(self, failure: KeyFailure) -> None:
        self.count += 1
        if len(self.items) < self.kept:
            self.items.append(failure)


class Writer(Protocol):
    """Sends entries to a target, pipelined, with bounded bytes in flight.

    ``write`` returns once the entries are on the wire (it may wait for budget, never for their
    replies); ``flush`` waits until every reply is in. Both raise ConnectionLostError when the
    target goes away. Error replies never raise: they become ``failures``.
    """

    @property
    def stats(self) -> WriterStats: ...

    @property
    def failures(self) -> list[KeyFailure]: ...

    async def start(self) -> None: ...

    async def write(self, entries: Sequence[Entry]) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...
