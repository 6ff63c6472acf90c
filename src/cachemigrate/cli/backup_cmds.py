"""`cachemigrate backups create | list | delete`: instance backups in the service's database and store."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from cachemigrate.cli.service_cmds import (
    DatabaseOpt,
    ProjectOpt,
    new_table,
    open_database,
    print_table,
    service_settings,
)
from cachemigrate.errors import ConfigError, MigrationError

InstanceOpt = Annotated[str, typer.Option("--instance", help="Instance ID (see `cachemigrate instances`)")]


def _instance(db: Any, instance_id: str, project_id: str | None) -> Any:
    from cachemigrate.service.db import repo

    _, rows = db.run_sync(repo.list_instances, project_id=project_id, limit=100000)
    for inst in rows:
        if inst.id == instance_id:
            return inst
    raise ConfigError(f"no instance {instance_id}" + (f" in project {project_id}" if project_id else ""))


def backups_create(
    instance: InstanceOpt,
    project_id: ProjectOpt = None,
    remark: Annotated[str, typer.Option(help="Free text kept with the backup")] = "",
    database: DatabaseOpt = None,
) -> None:
    """Back up an instance now (its RDB over replication, into the backup store) and wait."""
    from cachemigrate.service.backups import SUCCEED, BackupService
    from cachemigrate.service.crypto import Cipher

    settings = service_settings(database)
    cipher = Cipher.from_settings(settings)
    db = open_database(settings)
    try:
        inst = _instance(db, instance, project_id)
        service = BackupService(db, settings, cipher)
        row = asyncio.run(service.create(inst.project_id, inst.id, remark=remark, wait=True))
    finally:
        db.dispose()
    if row.status != SUCCEED:
        raise MigrationError(f"backup {row.id} of instance {inst.id} failed: {row.error_message}")
    typer.echo(f"backup_id: {row.id}\nstatus: {row.status}\nsize: {row.size}")


def backups_list(instance: InstanceOpt, project_id: ProjectOpt = None, database: DatabaseOpt = None) -> None:
    """List the backups of an instance, newest first."""
    from cachemigrate.service.db import backups as brepo

    db = open_database(service_settings(database))
    try:
        inst = _instance(db, instance, project_id)
        _, rows = db.run_sync(
            brepo.list_backups, project_id=inst.project_id, instance_id=inst.id, limit=100000
        )
        table = new_table("backup_id", "name", "status", "size", "created_at", "error")
        for b in rows:
            table.add_row(b.id, b.name, b.status, str(b.size), b.created_at, (b.error_message or "")[:60])
    finally:
        db.dispose()
    print_table(table, width=200)


def backups_delete(
    backup_id: Annotated[str, typer.Argument(help="Backup ID (see `cachemigrate backups list`)")],
    project_id: ProjectOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Delete a backup: its file in the backup store and its record (not while an import reads it)."""
    from cachemigrate.service.backups import BackupService
    from cachemigrate.service.crypto import Cipher
    from cachemigrate.service.db import backups as brepo

    settings = service_settings(database)
    db = open_database(settings)
    try:
        row = db.run_sync(brepo.get_backup, project_id=project_id, backup_id=backup_id)
        if row is None:
            raise ConfigError(f"no backup {backup_id}" + (f" in project {project_id}" if project_id else ""))
        service = BackupService(db, settings, Cipher.from_settings(settings))
        asyncio.run(service.delete(row.project_id, row.instance_id, row.id))
    finally:
        db.dispose()
    typer.echo(f"deleted: {backup_id}")


def register(app: typer.Typer) -> None:
    """Add `backups create`, `backups list` and `backups delete` to the `cachemigrate` typer app."""
    backups = typer.Typer(
        help="Back up registered instances; list and delete their backups.", no_args_is_help=True
    )
    backups.command("create")(backups_create)
    backups.command("list")(backups_list)
    backups.command("delete")(backups_delete)
    app.add_typer(backups, name="backups")
