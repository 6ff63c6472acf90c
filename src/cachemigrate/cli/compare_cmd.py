"""`cachemigrate compare SOURCE_URL TARGET_URL`: check every key after a migration."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_servers)


def compare_servers(
    source: Annotated[str, typer.Argument(help="redis:// URL of the source")],
    target: Annotated[str, typer.Argument(help="redis:// URL of the target")],
    ttl_tolerance_ms: Annotated[int, typer.Option(help="allowed TTL difference")] = 1000,
) -> None:
    """Compare type, value and TTL of every key of SOURCE with TARGET (read-only)."""
    import asyncio

    from rich.console import Console

    from cachemigrate.engine.compare import compare
    from cachemigrate.engine.spec import Endpoint
    from cachemigrate.errors import MigrationError

    report = asyncio.run(compare(Endpoint.from_url(source), Endpoint.from_url(target),
                                 ttl_tolerance_ms=ttl_tolerance_ms))
    out = Console()
    out.print(f"keys compared: {report.keys_compared:,} in {report.seconds:.1f} s "
              f"(per db: {dict(sorted(report.by_db.items()))})")
    out.print(f"mismatched: {report.mismatched}  missing in target: {report.missing}  "
              f"extra in target: {report.extra}")
    for m in report.examples:
        out.print(f"  db {m.db} {m.key!r}: {m.reason}", highlight=False)
    if not report.ok:
        raise MigrationError("source and target differ")
