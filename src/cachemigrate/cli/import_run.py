"""What `cachemigrate import` does once its arguments are parsed."""

from __future__ import annotations

import asyncio
import dataclasses
import os

from cachemigrate.cli import run_env
from cachemigrate.cli.progress import ProgressSink, err_console, print_summary, stdout_console
from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import (
    DbMode,
    Endpoint,
    PipelineOptions,
    PipelineSpec,
    SourceKind,
    SourceSpec,
)
from cachemigrate.errors import MigrationError


def run_import(
    *,
    files: list[str],
    target: str,
    no_replace: bool = False,
    rewrite: bool = False,
    big_key_mb: int = 8,
    bandwidth_mb: float | None = None,
    db: int | None = None,
    fold_dbs: bool = False,
    flush_target: bool = False,
    s3_endpoint_url: str | None = None,
    quiet: bool = False,
    filters: FilterRules | None = None,
) -> None:
    """The options of import_cmd.import_files, by the same names."""
    mode = DbMode.FOLD if fold_dbs else DbMode.ONLY if db is not None else DbMode.KEEP
    options = PipelineOptions(
        replace=not no_replace, rewrite=rewrite, big_key_bytes=big_key_mb << 20,
        bandwidth_mb=bandwidth_mb, db_mode=mode, db=db, flush_target=flush_target,
        c_walker=run_env.c_walker(), filters=filters,
    )
    kind = SourceKind.RDB_FILES if all(_looks_rdb(p) for p in files) else SourceKind.AOF_FILES
    s3 = run_env.s3_settings()
    if s3_endpoint_url:
        s3 = dataclasses.replace(s3, endpoint_url=s3_endpoint_url)
    spec = PipelineSpec(
        source=SourceSpec(kind, paths=tuple(files), s3=s3),
        target=Endpoint.from_url(target), options=options, name="import",
    )
    with ProgressSink("import", quiet=quiet) as sink:
        snapshot = asyncio.run(run_pipeline(spec, events=sink))
    if not quiet:
        print_summary(snapshot, stdout_console())
    if snapshot.keys_failed or snapshot.commands_failed:
        err_console().print(f"{snapshot.keys_failed} keys were refused by the target (listed above)")
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
