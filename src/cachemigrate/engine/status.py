"""Frozen status snapshots and the event sink a pipeline reports to.

A pipeline owns one mutable ``StatusCounters``; whoever watches it (CLI progress bar, service
runner) receives ``StatusSnapshot`` copies, never the live object.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Protocol


class Phase(enum.StrEnum):
    CONNECTING = "connecting"
    FULL = "full"
    INCREMENTAL = "incremental"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"


class LogLevel(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class KeyFailure:
    """A key (or command) the target refused, with the server's own words."""

    db: int
    key: bytes | None
    command: str
    error: str


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    phase: Phase
    source_kind: str
    started_at: float
    updated_at: float
    bytes_read: int = 0
    bytes_total: int | None = None
    keys_read: int = 0
    keys_written: int = 0
    keys_replaced: int = 0
    keys_skipped: int = 0
    keys_failed: int = 0
    keys_expired: int = 0
    keys_filtered: int = 0  # keys the db and filter rules leave behind (engine/filters.py)
    commands_written: int = 0
    commands_failed: int = 0
    bytes_written: int = 0
    keys_by_type: dict[str, int] = field(default_factory=dict)
    # Online migration: where the source is and where the target has got to.
    source_offset: int | None = None
    applied_offset: int | None = None
    lag_seconds: float | None = None
    caught_up: bool = False
    ops_per_sec: float = 0.0
    kb_per_sec: float = 0.0
    source_dbsize: int | None = None
    target_dbsize: int | None = None
    resumes_continue: int = 0
    resumes_fullresync: int = 0
    target_reconnects: int = 0  # target outages waited out (resume mode auto)
    message: str = ""

    @property
    def offset_lag_bytes(self) -> int | None:
        if self.source_offset is None or self.applied_offset is None:
            return None
        return max(0, self.source_offset - self.applied_offset)

    @property
    def elapsed(self) -> float:
        return max(0.0, self.updated_at - self.started_at)


class EventSink(Protocol):
    """Receives what a pipeline reports. Implementations must not block."""

    def status(self, snapshot: StatusSnapshot) -> None: ...

    def log(self, level: LogLevel, message: str) -> None: ...


class NullSink:
    """Discards everything (library use without a watcher)."""

    def status(self, snapshot: StatusSnapshot) -> None:
        return None

    def log(self, level: LogLevel, message: str) -> None:
        return None


class RecordingSink:
    """Keeps the last snapshot and every log line (tests, summaries)."""

    def __init__(self) -> None:
        self.last: StatusSnapshot | None = None
        self.logs: list[tuple[LogLevel, str]] = []

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot

    def log(self, level: LogLevel, message: str) -> None:
        self.logs.append((level, message))


def now() -> float:
    return time.time()
