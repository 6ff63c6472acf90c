"""`cachemigrate compare SOURCE_URL TARGET_URL`: check every key (or a sample) after a migration.

The options are declared here; compare_run.run_compare does the work (the engine is imported when
the command runs, not for its --help).
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_servers)


def compare_servers(
    source: Annotated[str, typer.Argument(help="redis:// URL of the source")],
    target: Annotated[str, typer.Argument(help="redis:// URL of the target")],
    sample: Annotated[int | None, typer.Option(
        help="compare about this many random keys instead of every key")] = None,
    rounds: Annotated[int, typer.Option(
        help="re-check keys that differ this many times (writes in flight of a live migration)")] = 3,
    delay: Annotated[float, typer.Option(help="seconds between re-checks")] = 0.5,
    repair: Annotated[bool, typer.Option(
        "--repair", help="copy every key still different from the source to the target again")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ttl_tolerance_ms: Annotated[int, typer.Option(help="allowed TTL difference")] = 1000,
) -> None:
    """Compare type, value and TTL of the keys of SOURCE with TARGET; exit 1 if any still differ.

    Read-only unless --repair.
    """
    from cachemigrate.cli.compare_run import run_compare

    run_compare(
        source=source, target=target, sample=sample, rounds=rounds, delay=delay, repair=repair,
        json_output=json_output, ttl_tolerance_ms=ttl_tolerance_ms,
    )
