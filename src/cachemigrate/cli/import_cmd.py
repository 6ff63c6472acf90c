"""`cachemigrate import FILE... --target URL`: backup files into a live server.

The options are declared here; import_run.run_import does the work (the engine is imported when
the command runs, not for its --help).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cachemigrate.cli import filter_opts as fo
from cachemigrate.cli.options import ascii_int


def register(app: typer.Typer) -> None:
    app.command("import")(import_files)


def import_files(
    files: Annotated[list[str], typer.Argument(
        help="RDB/AOF files, multi-part AOF folders or manifests, .zip/.tar.gz, s3://bucket/key "
        "(several: one per shard of a cluster source)")],
    target: Annotated[str, typer.Option(
        help="redis://\\[user:password@]host:port\\[/db]; rediss:// for TLS")],  # "\\[": rich markup
    no_replace: Annotated[bool, typer.Option("--no-replace", help="keep keys already in the target")] = False,
    rewrite: Annotated[bool, typer.Option(help="send plain commands instead of RESTORE payloads")] = False,
    big_key_mb: Annotated[int, typer.Option(help="values above this many MB go in chunks")] = 8,
    bandwidth_mb: Annotated[float | None, typer.Option(help="read at most this many MB/s")] = None,
    db: Annotated[int | None, typer.Option(help="import only this source db", parser=ascii_int)] = None,
    fold_dbs: Annotated[bool, typer.Option("--fold-dbs", help="put every db into db 0")] = False,
    flush_target: Annotated[bool, typer.Option("--flush-target", help="FLUSHALL the target first")] = False,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint URL")] = None,
    filter_file: fo.FilterFile = None,
    key_prefix: fo.AllowPrefix = None,
    skip_key_prefix: fo.BlockPrefix = None,
    skip_type: fo.BlockType = None,
    rename_prefix: fo.Rename = None,
    map_db: fo.DbMap = None,
    skip_expiring_within: fo.SkipExpiring = None,
    max_ttl: fo.MaxTtl = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Import RDB/AOF backup files into a target server (a cluster target is detected by itself)."""
    from cachemigrate.cli.import_run import run_import

    run_import(
        files=files, target=target, no_replace=no_replace, rewrite=rewrite, big_key_mb=big_key_mb,
        bandwidth_mb=bandwidth_mb, db=db, fold_dbs=fold_dbs, flush_target=flush_target,
        s3_endpoint_url=s3_endpoint_url, quiet=quiet,
        filters=fo.build_rules(
            filter_file=filter_file, key_prefix=key_prefix, skip_key_prefix=skip_key_prefix,
            skip_type=skip_type, rename_prefix=rename_prefix, map_db=map_db,
            skip_expiring_within=skip_expiring_within, max_ttl=max_ttl,
        ),
    )
