"""`cachemigrate serve | credentials create | instances | tasks`: run and administer the service.

These commands need the ``[service]`` extra; it is imported when one of them runs (a missing extra
is one line from cli/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cachemigrate.cli.options import ascii_int
from cachemigrate.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

    from cachemigrate.service.settings import Settings

DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="SQLAlchemy URL (default: SQLite in the data dir)")
]
ProjectOpt = Annotated[str | None, typer.Option("--project-id", help="Only this project")]


def service_settings(database: str | None = None, **overrides: Any) -> Settings:
    """The service's settings: the ``CACHEMIGRATE_*`` variables, then the options given here."""
    from pydantic import Field, ValidationError
    from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

    from cachemigrate.service.settings import DEFAULT_ALLOWED_NETWORKS, Settings

    class FromEnvironment(BaseSettings, Settings):
        model_config = SettingsConfigDict(env_prefix="CACHEMIGRATE_", extra="ignore", frozen=True)
        # A JSON list or "10.0.0.0/8,fd00::/8": Settings reads either (not JSON-decoded here).
        allowed_networks: Annotated[list[str], NoDecode] = Field(
            default_factory=lambda: list(DEFAULT_ALLOWED_NETWORKS)
        )

    values = {k: v for k, v in overrides.items() if v is not None}
    if database:
        values["database_url"] = database
    try:
        return Settings.model_validate(FromEnvironment(**values).model_dump())
    except SettingsError as exc:  # a variable that should hold JSON does not
        raise ConfigError(f"settings: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]] or ["settings"]
        raise ConfigError(
            f"setting {'.'.join(loc)} (CACHEMIGRATE_{loc[0].upper()}): {first['msg']}"
        ) from None


def open_database(settings: Settings) -> Any:
    from cachemigrate.service.db.session import Database, make_engine, upgrade

    engine = make_engine(settings.sqlalchemy_url())
    upgrade(engine)
    return Database(engine)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on", parser=ascii_int)] = None,
    database: DatabaseOpt = None,
) -> None:
    """Run the DCS-compatible migration service (settings from CACHEMIGRATE_* variables)."""
    import uvicorn

    from cachemigrate.service.app import create_app

    settings = service_settings(database, host=host, port=port)
    app = create_app(settings)
    # The engine's connections need the stock asyncio loop (not uvloop).
    uvicorn.run(app, host=settings.host, port=settings.port, loop="asyncio", log_level="info")


def credentials_create(
    project_id: Annotated[str, typer.Option("--project-id", help="Project the keys are bound to")],
    description: Annotated[str, typer.Option(help="Free text kept with the key")] = "",
    database: DatabaseOpt = None,
) -> None:
    """Create an AK/SK pair for a project and print it (the SK is shown only this once)."""
    from cachemigrate.service import auth
    from cachemigrate.service.crypto import Cipher
    from cachemigrate.service.db import repo

    auth.check_project_format(project_id)
    settings = service_settings(database)
    cipher = Cipher.from_settings(settings)
    ak, sk = auth.new_access_key()
    db = open_database(settings)
    try:
        db.run_sync(
            repo.add_credential,
            access_key=ak,
            project_id=project_id,
            secret_key_enc=cipher.encrypt(sk),
            description=description,
        )
    finally:
        db.dispose()
    typer.echo(f"project_id: {project_id}\naccess_key: {ak}\nsecret_key: {sk}")


def instances(project_id: ProjectOpt = None, database: DatabaseOpt = None) -> None:
    """List the registered Redis endpoints."""
    from cachemigrate.service.db import repo

    db = open_database(service_settings(database))
    try:
        _, rows = db.run_sync(repo.list_instances, project_id=project_id, limit=100000)
        table = new_table("instance_id", "project_id", "name", "addrs", "auth", "created_at")
        for inst in rows:
            auth_text = "password" if inst.password_enc else "-"
            table.add_row(inst.id, inst.project_id, inst.name, inst.addrs, auth_text, inst.created_at)
    finally:
        db.dispose()
    print_table(table)


def tasks(
    project_id: ProjectOpt = None,
    name: Annotated[str | None, typer.Option(help="Substring of the task name")] = None,
    database: DatabaseOpt = None,
) -> None:
    """List migration tasks with their status."""
    from cachemigrate.service.db import repo

    db = open_database(service_settings(database))
    try:
        _, rows = db.run_sync(repo.list_tasks, project_id=project_id, name=name, limit=100000)
        table = new_table("task_id", "project_id", "name", "type", "status", "updated_at", "error")
        for t in rows:
            table.add_row(
                t.id,
                t.project_id,
                t.name,
                t.migration_type,
                t.status,
                t.updated_at,
                (t.error_message or "")[:60],
            )
    finally:
        db.dispose()
    print_table(table)


def new_table(*columns: str) -> Table:
    from rich.table import Table

    return Table(*columns)


def print_table(table: Table, width: int | None = None) -> None:
    from rich.console import Console

    Console(width=width).print(table)


def register(app: typer.Typer) -> None:
    """Add the service commands to the `cachemigrate` typer app."""
    app.command("serve")(serve)
    credentials = typer.Typer(help="Manage AK/SK credentials of the service.", no_args_is_help=True)
    credentials.command("create")(credentials_create)
    app.add_typer(credentials, name="credentials")
    app.command("instances")(instances)
    app.command("tasks")(tasks)
