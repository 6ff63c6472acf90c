"""`cachemigrate migrate SOURCE_URL TARGET_URL`: online migration from a live server.

The options are declared here; migrate_run.run_migrate does the work (the engine is imported when
the command runs, not for its --help).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cachemigrate.cli import filter_opts as fo
from cachemigrate.cli.options import ascii_int


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)


def migrate(
    source_url: Annotated[str, typer.Argument(
        help="redis://\\[user:password@]host:port of the live source")],  # "\\[": rich markup
    target_url: Annotated[str, typer.Argument(help="redis://... of the target (a cluster is detected)")],
    incremental: Annotated[bool, typer.Option("--incremental", help="after the snapshot, keep "
                                              "applying the source's writes until Ctrl-C")] = False,
    bandwidth_mb: Annotated[float | None, typer.Option(help="read at most this many MB/s")] = None,
    db: Annotated[int | None, typer.Option(help="migrate only this source db", parser=ascii_int)] = None,
    fold_dbs: Annotated[bool, typer.Option("--fold-dbs", help="put every db into db 0")] = False,
    resume: Annotated[str, typer.Option(help="auto: reconnect after a dropped link; manual: stop "
                                        "with an error")] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="JSON file: resume from it if it exists, "
                                                   "keep it up to date")] = None,
    scan: Annotated[bool, typer.Option("--scan", help="copy with SCAN + DUMP (no replication)")] = False,
    flush_target: Annotated[bool, typer.Option("--flush-target", help="FLUSHALL the target first")] = False,
    filter_file: fo.FilterFile = None,
    key_prefix: fo.AllowPrefix = None,
    skip_key_prefix: fo.BlockPrefix = None,
    skip_type: fo.BlockType = None,
    rename_prefix: fo.Rename = None,
    map_db: fo.DbMap = None,
    skip_expiring_within: fo.SkipExpiring = None,
    max_ttl: fo.MaxTtl = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live display")] = False,
) -> None:
    """Migrate a live server into a target; Ctrl-C stops cleanly and prints the checkpoint."""
    from cachemigrate.cli.migrate_run import run_migrate

    run_migrate(
        source_url=source_url, target_url=target_url, incremental=incremental, bandwidth_mb=bandwidth_mb,
        db=db, fold_dbs=fold_dbs, resume=resume, checkpoint=checkpoint, scan=scan,
        flush_target=flush_target, quiet=quiet,
        filters=fo.build_rules(
            filter_file=filter_file, key_prefix=key_prefix, skip_key_prefix=skip_key_prefix,
            skip_type=skip_type, rename_prefix=rename_prefix, map_db=map_db,
            skip_expiring_within=skip_expiring_within, max_ttl=max_ttl,
        ),
    )
