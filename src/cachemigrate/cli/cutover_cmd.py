"""`cachemigrate cutover` and `cachemigrate rollback`: move the writes through the fronts."""

from __future__ import annotations

from typing import Annotated

import typer

_FRONT = ("a front clients connect through, e.g. haproxy:///run/haproxy/admin.sock?server=be/srv "
          "(repeat it: each front at one server moves to the other)")


def register(app: typer.Typer) -> None:
    app.command("cutover")(cutover)
    app.command("rollback")(rollback)


def cutover(
    source_url: Annotated[str, typer.Argument(help="redis://... of the server the clients use now")],
    target_url: Annotated[str, typer.Argument(help="redis://... of the server they move to")],
    front: Annotated[list[str], typer.Option(help=_FRONT)],
    checkpoint: Annotated[str, typer.Option(help="JSON file of the migration SOURCE → TARGET (the one "
                                            "`migrate --incremental --checkpoint` keeps): continued")],
    reverse_checkpoint: Annotated[str, typer.Option(help="JSON file for the reverse sync TARGET → "
                                                    "SOURCE that starts at the cutover")],
    max_pause_ms: Annotated[int, typer.Option(help="abort (and put everything back) when the "
                                              "source's writes would stay paused longer")] = 2000,
    catch_up_timeout: Annotated[float, typer.Option(help="seconds to wait for the migration to catch "
                                                    "up before pausing")] = 300.0,
    resume: Annotated[str, typer.Option(help="auto: reconnect after a dropped link; manual: stop "
                                        "with an error")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live display")] = False,
) -> None:
    """Cut over: catch up, pause the source's writes, switch the fronts, sync back until Ctrl-C."""
    from cachemigrate.cli.cutover_run import run_cutover

    run_cutover(source_url=source_url, target_url=target_url, fronts=front, checkpoint=checkpoint,
                reverse_checkpoint=reverse_checkpoint, max_pause_ms=max_pause_ms,
                catch_up_timeout=catch_up_timeout, resume=resume, quiet=quiet, rollback=False)


def rollback(
    source_url: Annotated[str, typer.Argument(help="redis://... of the server the clients used "
                                              "before the cutover (the cutover's SOURCE)")],
    target_url: Annotated[str, typer.Argument(help="redis://... of the server they use now "
                                              "(the cutover's TARGET)")],
    front: Annotated[list[str], typer.Option(help=_FRONT)],
    checkpoint: Annotated[str, typer.Option(help="the cutover's --checkpoint: the migration "
                                            "SOURCE → TARGET starts again from it")],
    reverse_checkpoint: Annotated[str, typer.Option(help="the cutover's --reverse-checkpoint: the "
                                                    "reverse sync, continued")],
    max_pause_ms: Annotated[int, typer.Option(help="abort (and put everything back) when the "
                                              "target's writes would stay paused longer")] = 2000,
    catch_up_timeout: Annotated[float, typer.Option(help="seconds to wait for the reverse sync to "
                                                    "catch up before pausing")] = 300.0,
    resume: Annotated[str, typer.Option(help="auto: reconnect after a dropped link; manual: stop "
                                        "with an error")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live display")] = False,
) -> None:
    """Roll a cutover back, with the same arguments: the fronts move back to SOURCE and the
    migration SOURCE → TARGET runs again until Ctrl-C."""
    from cachemigrate.cli.cutover_run import run_cutover

    run_cutover(source_url=source_url, target_url=target_url, fronts=front, checkpoint=checkpoint,
                reverse_checkpoint=reverse_checkpoint, max_pause_ms=max_pause_ms,
                catch_up_timeout=catch_up_timeout, resume=resume, quiet=quiet, rollback=True)
