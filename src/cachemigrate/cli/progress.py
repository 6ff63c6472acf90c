"""Live progress on the terminal (rich) and the summary printed at the end of a run.

rich is imported when something is first drawn or printed: a quiet run that logs no warning
never loads it (its import is a good share of a one-shot import's start-up).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from cachemigrate.engine.status import LogLevel, Phase, StatusSnapshot

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


@cache
def err_console() -> Console:
    """The one rich console on stderr (progress, logs, final error lines), made on first use."""
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console()


class ProgressSink:
    """An EventSink drawing a bar of bytes read with keys written, keys/s and ETA."""

    def __init__(self, description: str, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.last: StatusSnapshot | None = None
        self.logs: list[tuple[LogLevel, str]] = []
        # quiet: no bar at all (a disabled rich Progress draws nothing either)
        self._progress: Progress | None = None if quiet else _bar()
        self._task: TaskID | None = None
        self._description = description

    def __enter__(self) -> ProgressSink:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=None, keys=0, rate=0, extra="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.last is not None:
            self.status(self.last)
        if self._progress is not None:
            self._progress.stop()

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot
        if self._progress is None or self._task is None:
            return
        rate = snapshot.keys_written / snapshot.elapsed if snapshot.elapsed > 0 else 0.0
        extra = snapshot.phase.value
        lag = snapshot.offset_lag_bytes
        if lag is not None:
            extra += f"  lag {lag} B"
            if snapshot.lag_seconds is not None:
                extra += f" / {snapshot.lag_seconds:.1f} s"
        self._progress.update(
            self._task, completed=snapshot.bytes_read, total=snapshot.bytes_total,
            keys=f"{snapshot.keys_written:,}", rate=f"{rate:,.0f}", extra=extra,
        )

    def log(self, level: LogLevel, message: str) -> None:
        self.logs.append((level, message))
        if level is LogLevel.ERROR and self.last is not None and self.last.phase is Phase.FAILED:
            return  # the run's fatal error: the CLI prints it as its one last line
        if not self.quiet or level is not LogLevel.INFO:
            style = {"info": "dim", "warning": "yellow", "error": "red"}[level.value]
            from rich.markup import escape  # key and file names may hold "[...]"

            err_console().print(f"[{style}]{level.value}: {escape(message)}[/]", highlight=False)


def _bar() -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[keys]} keys  {task.fields[rate]}/s  {task.fields[extra]}"),
        TimeRemainingColumn(),
        console=err_console(),
        transient=False,
    )


def print_summary(s: StatusSnapshot, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"{s.source_kind}: {s.phase.value} in {s.elapsed:.1f} s", show_header=False)
    rate = s.keys_written / s.elapsed if s.elapsed > 0 else 0.0
    rows = [
        ("keys read", s.keys_read),
        ("keys written", s.keys_written),
        ("keys replaced", s.keys_replaced),
        ("keys skipped (already in target)", s.keys_skipped),
        ("keys expired (dropped)", s.keys_expired),
        ("keys left out (db and filter rules)", s.keys_filtered),
        ("keys failed", s.keys_failed),
        ("commands written", s.commands_written),
        ("commands failed", s.commands_failed),
        ("bytes read", s.bytes_read),
        ("keys/s", f"{rate:,.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    for t, n in sorted(s.keys_by_type.items()):
        table.add_row(f"  {t}", f"{n:,}")
    if s.message:
        table.add_row("note", s.message)
    console.print(table)
