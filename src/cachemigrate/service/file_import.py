"""A backup import of several files runs as one pipeline per file, in the order given.

Each file (one per shard of a cluster source, or an archive, or a multi-part AOF's manifest) thus
has its own progress: a log line when it starts, one with its counts when it ends, and one naming
it when it fails. The snapshots the runner persists add up the files done so far, and the total
size is estimated from the files opened so far until the last one is reached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from cachemigrate.engine.checkpoint import CheckpointStore
from cachemigrate.engine.spec import PipelineSpec, SourceKind
from cachemigrate.engine.status import EventSink, LogLevel, Phase, StatusSnapshot
from cachemigrate.errors import CacheMigrateError
from cachemigrate.service.runner import Executor

FILE_KINDS = (SourceKind.RDB_FILES, SourceKind.AOF_FILES)
_SUMMED = (
    "bytes_read", "keys_read", "keys_written", "keys_replaced", "keys_skipped", "keys_failed", "keys_expired",
    "commands_written", "commands_failed", "bytes_written",
)


class _FileSink:
    """Passes log lines on; turns one file's snapshots into snapshots of the whole import."""

    def __init__(self, outer: EventSink, done: StatusSnapshot | None, index: int, count: int,
                 started: float, label: str) -> None:
        self.outer = outer
        self.done = done
        self.index = index
        self.count = count
        self.started = started
        self.label = label
        self.last: StatusSnapshot | None = None

    def log(self, level: LogLevel, message: str) -> None:
        self.outer.log(level, message)

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot
        self.outer.status(self.total(snapshot))

    def total(self, snap: StatusSnapshot) -> StatusSnapshot:
        done = self.done
        sums = {f: getattr(snap, f) + (getattr(done, f) if done else 0) for f in _SUMMED}
        by_type = dict(done.keys_by_type) if done else {}
        for k, v in snap.keys_by_type.items():
            by_type[k] = by_type.get(k, 0) + v
        before = done.bytes_read if done else 0
        total: int | None = None
        if snap.bytes_total is not None:
            # Files not opened yet count as large as the average of those opened.
            average = (before + snap.bytes_total) / (self.index + 1)
            total = int(before + snap.bytes_total + average * (self.count - self.index - 1))
        phase = snap.phase
        if phase is Phase.DONE and self.index < self.count - 1:
            phase = Phase.FULL
        message = snap.message or ""
        return dataclasses.replace(
            snap, phase=phase, started_at=self.started, bytes_total=total, keys_by_type=by_type,
            message=f"file {self.index + 1}/{self.count} {self.label}" + (f": {message}" if message else ""),
            **sums,
        )


class FileByFileExecutor:
    """Wraps an executor; file imports go through it one file at a time, others unchanged."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    async def __call__(
        self,
        spec: PipelineSpec,
        *,
        events: EventSink,
        checkpoints: CheckpointStore | None,
        stop: asyncio.Event | None,
    ) -> StatusSnapshot:
        src = spec.source
        if src.kind not in FILE_KINDS or not src.paths:
            return await self.inner(spec, events=events, checkpoints=checkpoints, stop=stop)
        started = time.time()
        done: StatusSnapshot | None = None
        count = len(src.paths)
        for index, path in enumerate(src.paths):
            label = path
            where = f"file {index + 1}/{count} {label}"
            events.log(LogLevel.INFO, f"{where}: import started")
            one = dataclasses.replace(spec, source=dataclasses.replace(src, paths=(path,)))
            sink = _FileSink(events, done, index, count, started, label)
            try:
                snap = await self.inner(one, events=sink, checkpoints=checkpoints, stop=stop)
            except CacheMigrateError as exc:
                events.log(LogLevel.ERROR, f"{where}: import failed: {exc}")
                raise
            events.log(
                LogLevel.INFO,
                f"{where}: {snap.phase.value}: {snap.keys_written} keys written, {snap.keys_failed} failed, "
                f"{snap.keys_skipped} skipped, {snap.bytes_read} bytes read",
            )
            done = sink.total(snap)
            if stop is not None and stop.is_set():
                break
        assert done is not None
        final = dataclasses.replace(done, phase=Phase.STOPPED if stop is not None and stop.is_set() else
                                    Phase.DONE, bytes_total=done.bytes_read, updated_at=time.time())
        events.status(final)
        return final
