"""`cachemigrate import FILE... --target URL`: backup files into a live server."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Annotated

import typer
from rich.console import Console

from cachemigrate.cli.progress import ProgressSink, err_console, print_summary
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import (
    DbMode,
    Endpoint,
    PipelineOptions,
    PipelineSpec,
    S3Settings,
    SourceKind,
    SourceSpec,
)
from cachemigrate.errors import MigrationError


def register(app: typer.Typer) -> None:
    app.command("import")(import_files)


def import_files(
    files: Annotated[list[str], typer.Argument(
        help="RDB/AOF files, multi-part AOF folders or manifests, .zip/.tar.gz, s3://bucket/key "
        "(several: one per shard of a cluster source)")],
    target: Annotated[str, typer.Option(help="redis://[user:password@]host:port[/db]; rediss:// for TLS")],
    no_replace: Annotated[bool, typer.Option("--no-replace", help="keep keys already in the target")] = False,
    rewrite: Annotated[bool, typer.Option(help="send plain commands instead of RESTORE payloads")] = False,
    big_key_mb: Annotated[int, typer.Option(help="values above this many MB go in chunks")] = 8,
    bandwidth_mb: Annotated[float | None, typer.Option(help="read at most this many MB/s")] = None,
    db: Annotated[int | None, typer.Option(help="import only this source db")] = None,
    fold_dbs: Annotated[bool, typer.Option("--fold-dbs", help="put every db into db 0")] = False,
    flush_target: Annotated[bool, typer.Option("--flush-target", help="FLUSHALL the target first")] = False,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint URL")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Import RDB/AOF backup files into a target server (a cluster target is detected by itself)."""
    mode = DbMode.FOLD if fold_dbs else DbMode.ONLY if db is not None else DbMode.KEEP
    options = PipelineOptions(
        replace=not no_replace, rewrite=rewrite, big_key_bytes=big_key_mb << 20,
        bandwidth_mb=bandwidth_mb, db_mode=mode, db=db, flush_target=flush_target,
    )
    kind = SourceKind.RDB_FILES if all(_looks_rdb(p) for p in files) else SourceKind.AOF_FILES
    s3 = S3Settings.from_env()
    if s3_endpoint_url:
        s3 = dataclasses.replace(s3, endpoint_url=s3_endpoint_url)
    spec = PipelineSpec(
        source=SourceSpec(kind, paths=tuple(files), s3=s3),
        target=Endpoint.from_url(target), options=options, name="import",
    )
    with ProgressSink("import", quiet=quiet) as sink:
        snapshot = asyncio.run(run_pipeline(spec, events=sink))
    if not quiet:
        print_summary(snapshot, Console())
    if snapshot.keys_failed or snapshot.commands_failed:
        err_console.print(f"{snapshot.keys_failed} keys were refused by the target (listed above)")
        raise MigrationError(f"{snapshot.keys_failed} keys and {snapshot.commands_failed} commands failed")


def _looks_rdb(path: str) -> bool:
    """An RDB by its name, or (local files) by its magic; AOF, folders and archives go the other way."""
    if path.lower().endswith(".rdb"):
        return True
    if "://" in path or not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        head = fh.read(9)
    return head.startswith((b"REDIS", b"VALKEY")) and not path.lower().endswith(".aof")
