"""What `cachemigrate cutover` and `rollback` do once their arguments are parsed.

Both run one sequence (engine/cutover.py) between the two servers, in opposite directions:
cutover continues the migration SOURCE → TARGET from --checkpoint (or starts it), waits until it
has caught up, moves the writes to TARGET and then runs the reverse sync TARGET → SOURCE (its
position in --reverse-checkpoint) until Ctrl-C. Rollback continues that reverse sync from
--reverse-checkpoint, moves the writes back to SOURCE and runs SOURCE → TARGET again (from
--checkpoint, rewritten at the rollback) until Ctrl-C. A later `migrate --incremental` with
the file of the direction that ran last continues it.

Ctrl-C before the sequence has moved anything stops the migration (its checkpoint saved); while
the writes are paused it waits for the end of the (bounded) pause; a second Ctrl-C ends the
process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from cachemigrate.cli.migrate_run import LiveSink
from cachemigrate.cli.progress import err_console, print_summary, stdout_console
from cachemigrate.engine.checkpoint import FileCheckpointStore
from cachemigrate.engine.cutover import CutoverOptions, CutoverReport, cutover
from cachemigrate.engine.fronts import Front, open_front
from cachemigrate.engine.live import LiveMigration
from cachemigrate.engine.spec import (
    Endpoint,
    PipelineOptions,
    PipelineSpec,
    ResumeMode,
    SourceKind,
    SourceSpec,
)
from cachemigrate.engine.status import LogLevel, StatusSnapshot
from cachemigrate.errors import ConfigError, MigrationError


def run_cutover(
    *,
    source_url: str,
    target_url: str,
    fronts: list[str],
    checkpoint: str,
    reverse_checkpoint: str,
    max_pause_ms: int,
    catch_up_timeout: float,
    resume: str,
    quiet: bool,
    rollback: bool,
) -> None:
    """The options of cutover_cmd.cutover / rollback, by the same names."""
    try:
        resume_mode = ResumeMode(resume)
    except ValueError:
        raise ConfigError(f"--resume must be auto or manual, got {resume!r}") from None
    if max_pause_ms <= 0:
        raise ConfigError("--max-pause-ms must be more than 0")
    if not fronts:
        raise ConfigError("give at least one --front")
    opened = [open_front(url) for url in fronts]
    old, new = Endpoint.from_url(source_url), Endpoint.from_url(target_url)
    forward_file, reverse_file = checkpoint, reverse_checkpoint
    if rollback:
        old, new = new, old
        forward_file, reverse_file = reverse_file, forward_file
    spec = PipelineSpec(source=SourceSpec(SourceKind.SYNC, endpoint=old), target=new,
                        options=PipelineOptions(incremental=True, resume_mode=resume_mode),
                        name="rollback" if rollback else "cutover")
    options = CutoverOptions(max_pause=max_pause_ms / 1000, catch_up_timeout=catch_up_timeout)
    word = "rollback" if rollback else "cutover"
    with LiveSink(f"{word} {old.display_url()} → {new.display_url()}", quiet=quiet) as sink:
        report, snapshot = asyncio.run(_run(spec, opened, sink, forward_file, reverse_file, options))
    if not quiet and snapshot is not None:
        print_summary(snapshot, stdout_console())
    cp = asyncio.run(FileCheckpointStore(reverse_file).load())
    if cp is not None:
        err_console().print(f"checkpoint (saved in {reverse_file}): {cp.to_json()}", highlight=False,
                            soft_wrap=True)
    if report.failed:
        raise MigrationError(f"{word} done, but these fronts still point at {report.old}: "
                             + "; ".join(report.failed))


async def _run(
    spec: PipelineSpec, fronts: list[Front], sink: LiveSink, forward_file: str, reverse_file: str,
    options: CutoverOptions,
) -> tuple[CutoverReport, StatusSnapshot | None]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    forward = LiveMigration(spec, events=sink, store=FileCheckpointStore(forward_file))
    forward.start()
    job = loop.create_task(cutover(forward, fronts, reverse_store=FileCheckpointStore(reverse_file),
                                   options=options, stop=stop))

    def interrupt() -> None:
        if job.done() or not stop.is_set():
            if not job.done():
                sink.log(LogLevel.WARNING, f"interrupted: the {spec.name} stops before pausing, or "
                         "ends its (bounded) pause first (Ctrl-C again to end the process now)")
            stop.set()
        else:
            job.cancel()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, interrupt)
    try:
        try:
            reverse, report = await job
        except BaseException as exc:
            if forward.task is not None and not forward.task.done():
                with contextlib.suppress(MigrationError, OSError):
                    await forward.stop()  # its checkpoint saved
            if isinstance(exc, asyncio.CancelledError):
                raise MigrationError(f"interrupted during the {spec.name}") from None
            raise
        line = (f"{spec.name}: writes paused {report.paused_ms:.1f} ms; " + "; ".join(report.moved)
                + f"; the sync {report.new} → {report.old} runs until Ctrl-C")
        if sink.quiet:  # the one line a quiet run prints about it, as it happens
            err_console().print(line, highlight=False, soft_wrap=True)
        else:
            sink.log(LogLevel.INFO, line)
        await stop.wait()
        return report, await reverse.stop()
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
