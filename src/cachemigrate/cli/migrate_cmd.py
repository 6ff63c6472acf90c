"""`cachemigrate migrate SOURCE_URL TARGET_URL`: online migration from a live server.

The source is replicated (PSYNC: full snapshot, then with --incremental the command stream until
Ctrl-C); a source that refuses to replicate is copied with SCAN + DUMP instead. Ctrl-C stops
cleanly: what was read is written, the checkpoint is saved (with --checkpoint) and printed; a later
run with the same --checkpoint continues from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cachemigrate.cli.progress import err_console, print_summary
from cachemigrate.engine.checkpoint import CheckpointStore, FileCheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import (
    DbMode,
    Endpoint,
    PipelineOptions,
    PipelineSpec,
    ResumeMode,
    SourceKind,
    SourceSpec,
)
from cachemigrate.engine.status import LogLevel, StatusSnapshot
from cachemigrate.errors import ConfigError, MigrationError


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)


class LiveSink:
    """An EventSink drawing the online state: phase, snapshot bytes, keys, lag, resumes."""

    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet
        self.last: StatusSnapshot | None = None
        self._live = Live(self._render(), console=err_console, refresh_per_second=4,
                          transient=False, auto_refresh=not quiet)

    def __enter__(self) -> LiveSink:
        if not self.quiet:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.quiet:
            self._live.update(self._render())
            self._live.stop()
            if not err_console.is_terminal:
                err_console.print()  # Live leaves a redirected stream mid-line

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot
        if not self.quiet:
            self._live.update(self._render())

    def log(self, level: LogLevel, message: str) -> None:
        if not self.quiet or level is not LogLevel.INFO:
            style = {"info": "dim", "warning": "yellow", "error": "red"}[level.value]
            text = Text(f"{level.value}: {message}", style=style)
            if self._live.is_started:
                self._live.console.print(text)
            else:
                err_console.print(text)

    def _render(self) -> Group:
        s = self.last
        head = Text(f"{self.title}  ", style="bold")
        if s is None:
            return Group(head + Text("connecting...", style="dim"))
        head.append(f"{s.source_kind} · {s.phase.value}", style="cyan")
        if s.caught_up:
            head.append("  ✓ caught up", style="green")
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        if s.bytes_total:
            bar = ProgressBar(total=s.bytes_total, completed=min(s.bytes_read, s.bytes_total), width=30)
            table.add_row("snapshot", Group(bar, Text(f"{_mb(s.bytes_read)} of {_mb(s.bytes_total)}")))
        else:
            table.add_row("read", _mb(s.bytes_read))
        table.add_row("keys", f"{s.keys_read:,} read · {s.keys_written:,} written · {s.keys_failed:,} failed")
        rates = f"{s.ops_per_sec:,.0f}/s · {s.kb_per_sec:,.0f} KB/s"
        table.add_row("commands", f"{s.commands_written:,} · {rates}")
        lag = s.offset_lag_bytes
        if lag is not None:
            secs = "" if s.lag_seconds is None else f" · {s.lag_seconds:.1f} s"
            table.add_row("lag", f"{lag:,} bytes{secs}")
        if s.resumes_continue or s.resumes_fullresync:
            table.add_row("resumes", f"{s.resumes_continue} continued · {s.resumes_fullresync} full resyncs")
        table.add_row("elapsed", f"{s.elapsed:.0f} s")
        return Group(head, table)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def migrate(
    source_url: Annotated[str, typer.Argument(help="redis://[user:password@]host:port of the live source")],
    target_url: Annotated[str, typer.Argument(help="redis://... of the target (a cluster is detected)")],
    incremental: Annotated[bool, typer.Option("--incremental", help="after the snapshot, keep "
                                              "applying the source's writes until Ctrl-C")] = False,
    bandwidth_mb: Annotated[float | None, typer.Option(help="read at most this many MB/s")] = None,
    db: Annotated[int | None, typer.Option(help="migrate only this source db")] = None,
    fold_dbs: Annotated[bool, typer.Option("--fold-dbs", help="put every db into db 0")] = False,
    resume: Annotated[str, typer.Option(help="auto: reconnect after a dropped link; manual: stop "
                                        "with an error")] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="JSON file: resume from it if it exists, "
                                                   "keep it up to date")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="copy with SCAN + DUMP (no replication)")] = False,
    flush_target: Annotated[bool, typer.Option("--flush-target", help="FLUSHALL the target first")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live display")] = False,
) -> None:
    """Migrate a live server into a target; Ctrl-C stops cleanly and prints the checkpoint."""
    try:
        resume_mode = ResumeMode(resume)
    except ValueError:
        raise ConfigError(f"--resume must be auto or manual, got {resume!r}") from None
    mode = DbMode.FOLD if fold_dbs else DbMode.ONLY if db is not None else DbMode.KEEP
    options = PipelineOptions(
        incremental=incremental, bandwidth_mb=bandwidth_mb, resume_mode=resume_mode,
        db_mode=mode, db=db, flush_target=flush_target,
    )
    source = Endpoint.from_url(source_url)
    spec = PipelineSpec(
        source=SourceSpec(SourceKind.SCAN if scan else SourceKind.SYNC, endpoint=source),
        target=Endpoint.from_url(target_url), options=options, name="migrate",
    )
    store: CheckpointStore = FileCheckpointStore(checkpoint) if checkpoint else MemoryCheckpointStore()
    with LiveSink(f"{source.display_url()} → {spec.target.display_url()}", quiet=quiet) as sink:
        snapshot = asyncio.run(_run(spec, sink, store))
    if not quiet:
        print_summary(snapshot, Console())
    cp = asyncio.run(store.load())
    if cp is not None:
        where = f" (saved in {checkpoint})" if checkpoint else ""
        err_console.print(f"checkpoint{where}: {cp.to_json()}", highlight=False, soft_wrap=True)
    if snapshot.keys_failed or snapshot.commands_failed:
        raise MigrationError(f"{snapshot.keys_failed} keys and {snapshot.commands_failed} commands failed")


async def _run(spec: PipelineSpec, sink: LiveSink, store: CheckpointStore) -> StatusSnapshot:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run_pipeline(spec, events=sink, checkpoints=store, stop=stop))

    def interrupt() -> None:
        if stop.is_set():
            task.cancel()  # a second Ctrl-C: do not wait for the writer
            return
        sink.log(LogLevel.WARNING, "stopping: writing what was read and saving the checkpoint "
                 "(Ctrl-C again to abort)")
        stop.set()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, interrupt)
    try:
        return await task
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
