"""What the status of a run (engine/pipeline.py) says, kept across its sessions.

A run that waits out a target outage is several sessions, each with its own reader and writer:
``RunStatus`` carries the counters of the sessions before the current one (``carry``), so that a
snapshot counts the whole run. It also keeps the rates (ops/s, KB/s), the ``source_dbsize`` and
``target_dbsize`` of an online migration between standalone servers (``make_counts``), and names
the keys the target refuses in the log (the first ``FAILURES_LOGGED``; then they are counted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from cachemigrate.engine.dbsize import KeyCount
from cachemigrate.engine.presence import PresenceCheck
from cachemigrate.engine.readers.base import Reader
from cachemigrate.engine.spec import DbMode, PipelineSpec
from cachemigrate.engine.status import EventSink, KeyFailure, LogLevel, Phase, StatusSnapshot
from cachemigrate.engine.transform import Transformer
from cachemigrate.engine.writers.base import Writer, WriterStats
from cachemigrate.protocol.probe import TargetInfo

FAILURES_LOGGED = 100  # failed keys named one by one in the log; the rest are counted


class RunStatus:
    """The counters of one run of ``spec`` and the snapshots built from them."""

    def __init__(self, spec: PipelineSpec, events: EventSink) -> None:
        self.spec = spec
        self.events = events
        self.started = time.time()
        self.failures_seen = 0
        self.target_reconnects = 0  # target outages waited out
        # The current session's reader and writer, until ``carry`` adds their counters.
        self.session_writer: Writer | None = None
        self.session_reader: Reader | None = None
        self.counts: list[KeyCount] = []  # source and target dbsize (online sources)
        self._carried = WriterStats()
        self._carried_reads = (0, 0, 0)  # keys read, +CONTINUE and FULLRESYNC resumes
        self._last_rate = (time.monotonic(), 0, 0)
        self._rates = (0.0, 0.0)

    def carry(self) -> None:
        """A session ended: its counters go into the run's. Once each: a session that failed
        before making its own reader or writer keeps the last ones."""
        writer, self.session_writer = self.session_writer, None
        if writer is not None:
            self._carried.add(writer.stats)
        reader, self.session_reader = self.session_reader, None
        if reader is not None:
            r = reader.progress()
            keys, continued, resynced = self._carried_reads
            self._carried_reads = (keys + r.keys_read, continued + r.resumes_continue,
                                   resynced + r.resumes_fullresync)

    def log_failure(self, failure: KeyFailure) -> None:
        self.failures_seen += 1
        if self.failures_seen <= FAILURES_LOGGED:
            key = failure.key.decode(errors="backslashreplace") if failure.key is not None else "-"
            self.events.log(LogLevel.ERROR, f"db {failure.db} key {key!r}: {failure.command} "
                            f"refused by the target: {failure.error}")
        elif self.failures_seen == FAILURES_LOGGED + 1:
            self.events.log(LogLevel.ERROR, "more keys refused; only the count is kept from here on")

    def make_counts(self, target: TargetInfo | None, reader: Reader | None, exclude: bytes | None) -> None:
        """source_dbsize and target_dbsize of an online migration between standalone servers;
        ``exclude``: the target's marker key, not counted."""
        src = self.spec.source.endpoint
        if self.counts or src is None or target is None or target.cluster:
            return
        if reader is None or reader.source_kind == "cluster":
            return
        o = self.spec.options
        covers: Callable[[int], bool] | None = None
        if o.db_mode is DbMode.ONLY:
            only, into = o.db, o.db if o.target_db is None else o.target_db
            source = KeyCount(src, lambda db: db == only)
            covers = into.__eq__ if into is not None else None
        else:
            source = KeyCount(src)
            if o.db_mode is DbMode.FOLD:
                covers = (0).__eq__
        self.counts = [source, KeyCount(self.spec.target, covers, exclude=exclude)]

    def snapshot(
        self,
        *,
        phase: Phase,
        reader: Reader | None,
        writing: bool,
        applied_offset: int,
        presence: PresenceCheck | None,
        transforms: Sequence[Transformer],
        waiting: str,
        message: str = "",
    ) -> StatusSnapshot:
        """The run's status now; ``writing``: the current session has its writer, ``waiting``:
        what the run is waiting for (a lost target), said as the message."""
        r = reader.progress() if reader is not None else None
        w = WriterStats()
        w.add(self._carried)  # the sessions before a target outage
        if self.session_writer is not None:
            w.add(self.session_writer.stats)
        keys_read, continued, resynced = self._carried_reads
        if r is not None and self.session_reader is not None:
            keys_read += r.keys_read
            continued += r.resumes_continue
            resynced += r.resumes_fullresync
        if r is not None and phase in (Phase.FULL, Phase.INCREMENTAL):
            phase = r.phase
        by_type: dict[str, int] = {}
        expired = skipped_filter = filtered = 0
        for tf in transforms:
            for k, v in tf.keys_by_type.items():
                by_type[k] = by_type.get(k, 0) + v
            expired += tf.expired + tf.walked_expired
            skipped_filter += tf.unsupported_count
            filtered += tf.keys_filtered
        now = time.time()
        if writing:
            self._update_rates(w.commands_written, w.bytes_written)
        source_count, target_count = self.counts if self.counts else (None, None)
        return StatusSnapshot(
            phase=phase,
            source_kind=reader.source_kind if reader is not None else self.spec.source.kind.value,
            started_at=self.started,
            updated_at=now,
            bytes_read=r.bytes_read if r else 0,
            bytes_total=r.bytes_total if r else None,
            keys_read=keys_read,
            keys_written=w.keys_written,
            keys_replaced=presence.replaced if presence else 0,
            keys_skipped=w.keys_skipped + (presence.skipped if presence else 0),
            keys_failed=w.keys_failed + skipped_filter,
            keys_expired=expired,
            keys_filtered=filtered + (r.keys_filtered if r else 0),
            commands_written=w.commands_written,
            commands_failed=w.commands_failed,
            bytes_written=w.bytes_written,
            keys_by_type=by_type,
            source_offset=r.source_offset if r else None,
            applied_offset=applied_offset if writing and r and r.source_offset is not None else None,
            lag_seconds=r.lag_seconds if r else None,
            caught_up=r.caught_up if r and not waiting else False,
            ops_per_sec=self._rates[0],
            kb_per_sec=self._rates[1],
            source_dbsize=source_count.value if source_count else None,
            target_dbsize=target_count.value if target_count else None,
            resumes_continue=continued,
            resumes_fullresync=resynced,
            target_reconnects=self.target_reconnects,
            message=message or waiting or (r.message if r else ""),
        )

    def _update_rates(self, commands: int, nbytes: int) -> None:
        t, c0, b0 = self._last_rate
        now = time.monotonic()
        if now - t >= 0.5:
            self._rates = ((commands - c0) / (now - t), (nbytes - b0) / 1024 / (now - t))
            self._last_rate = (now, commands, nbytes)
