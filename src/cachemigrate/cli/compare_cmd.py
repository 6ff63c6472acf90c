"""`cachemigrate compare SOURCE_URL TARGET_URL`: check every key (or a sample) after a migration.

The options are declared here; compare_run.run_compare does the work (the engine is imported when
the command runs, not for its --help).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cachemigrate.cli import filter_opts as fo


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
    filter_file: fo.FilterFile = None,
    key_prefix: fo.AllowPrefix = None,
    skip_key_prefix: fo.BlockPrefix = None,
    skip_type: fo.BlockType = None,
    rename_prefix: fo.Rename = None,
    map_db: fo.DbMap = None,
    skip_expiring_within: fo.SkipExpiring = None,
    max_ttl: fo.MaxTtl = None,
) -> None:
    """Compare type, value and TTL of the keys of SOURCE with TARGET; exit 1 if any still differ.

    Read-only unless --repair. With the filter options of the migration (the same as `migrate`
    and `import` take), the source is compared as the rules make it: keys left out are not
    missing, renamed keys are compared under their new names, a repair copies through the rules.
    """
    from cachemigrate.cli.compare_run import run_compare

    run_compare(
        source=source, target=target, sample=sample, rounds=rounds, delay=delay, repair=repair,
        json_output=json_output, ttl_tolerance_ms=ttl_tolerance_ms,
        filters=fo.build_rules(
            filter_file=filter_file, key_prefix=key_prefix, skip_key_prefix=skip_key_prefix,
            skip_type=skip_type, rename_prefix=rename_prefix, map_db=map_db,
            skip_expiring_within=skip_expiring_within, max_ttl=max_ttl,
        ),
    )
