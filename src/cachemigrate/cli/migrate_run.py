"""What `cachemigrate migrate` does once its arguments are parsed.

The source is replicated (PSYNC: full snapshot, then with --incremental the command stream until
Ctrl-C); a source that refuses to replicate is copied with SCAN + DUMP instead. Ctrl-C stops
cleanly: what was read is written, the checkpoint is saved (with --checkpoint) and printed; a later
run with the same --checkpoint continues from it. Without --incremental such a run still ends by
itself: a checkpoint saved in an incremental phase is continued (+CONTINUE) up to the source's
replication offset at the resume, then the run ends (engine/readers/sync.py, "Full-only resume").

No trace is left in the target: the exactly-once offset marker (engine/exactly_once.py) is removed
when the run ends by itself, and when Ctrl-C stops a run without --checkpoint (nothing resumes
it). A run stopped with --checkpoint keeps it until a later run finishes the migration.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from cachemigrate.cli import run_env
from cachemigrate.cli.progress import err_console, print_summary, stdout_console
from cachemigrate.engine.checkpoint import CheckpointStore, FileCheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.filter_rules import FilterRules
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
from cachemigrate.engine.status import LogLevel, Phase, StatusSnapshot
from cachemigrate.errors import ConfigError, MigrationError

if TYPE_CHECKING:
    from rich.console import Group
    from rich.live import Live


class LiveSink:
    """An EventSink drawing the online state: phase, snapshot bytes, keys, lag, resumes.

    Quiet, it draws nothing and loads rich only to print a warning or an error.
    """

    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet
        self.last: StatusSnapshot | None = None
        self._live: Live | None = None
        if not quiet:
            from rich.live import Live

            self._live = Live(self._render(), console=err_console(), refresh_per_second=4,
                              transient=False, auto_refresh=True)

    def __enter__(self) -> LiveSink:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            if not err_console().is_terminal:
                err_console().print()  # Live leaves a redirected stream mid-line

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot
        if self._live is not None:
            self._live.update(self._render())

    def log(self, level: LogLevel, message: str) -> None:
        if level is LogLevel.ERROR and self.last is not None and self.last.phase is Phase.FAILED:
            return  # the run's fatal error: the CLI prints it as its one last line
        if not self.quiet or level is not LogLevel.INFO:
            from rich.text import Text

            style = {"info": "dim", "warning": "yellow", "error": "red"}[level.value]
            text = Text(f"{level.value}: {message}", style=style)
            if self._live is not None and self._live.is_started:
                self._live.console.print(text)
            else:
                err_console().print(text)

    def _render(self) -> Group:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

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
        if s.target_reconnects:
            table.add_row("target", f"{s.target_reconnects} outages waited out")
        if s.message.startswith("waiting for target"):
            table.add_row("", Text(s.message, style="yellow"))
        table.add_row("elapsed", f"{s.elapsed:.0f} s")
        return Group(head, table)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def run_migrate(
    *,
    source_url: str,
    target_url: str,
    incremental: bool = False,
    bandwidth_mb: float | None = None,
    db: int | None = None,
    fold_dbs: bool = False,
    resume: str = "auto",
    checkpoint: str | None = None,
    scan: bool = False,
    flush_target: bool = False,
    quiet: bool = False,
    filters: FilterRules | None = None,
) -> None:
    """The options of migrate_cmd.migrate, by the same names."""
    try:
        resume_mode = ResumeMode(resume)
    except ValueError:
        raise ConfigError(f"--resume must be auto or manual, got {resume!r}") from None
    mode = DbMode.FOLD if fold_dbs else DbMode.ONLY if db is not None else DbMode.KEEP
    options = PipelineOptions(
        incremental=incremental, bandwidth_mb=bandwidth_mb, resume_mode=resume_mode,
        db_mode=mode, db=db, flush_target=flush_target, c_walker=run_env.c_walker(), filters=filters,
        resumable=checkpoint is not None,
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
        print_summary(snapshot, stdout_console())
    cp = asyncio.run(store.load())
    if cp is not None:
        where = f" (saved in {checkpoint})" if checkpoint else ""
        err_console().print(f"checkpoint{where}: {cp.to_json()}", highlight=False, soft_wrap=True)
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
