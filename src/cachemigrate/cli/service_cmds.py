"""`cachemigrate serve | worker | workers | credentials create|list|revoke|rotate | secrets rotate |
instances | tasks`: run and administer the service.

These commands need the ``[service]`` extra; it is imported when one of them runs (a missing extra
is one line from cli/app.py).
"""

from __future__ import annotations

from pathlib import Path
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
        front_socket_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)

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
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="PEM certificate (chain): serve HTTPS")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", help="PEM private key of the certificate")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve /metrics for the operator on this port")
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option("--metrics-host", help="Address of the /metrics listener (127.0.0.1)")
    ] = None,
) -> None:
    """Run the DCS-compatible migration service (settings from CACHEMIGRATE_* variables)."""
    import asyncio

    from cachemigrate.service import serving
    from cachemigrate.service.app import create_app

    settings = service_settings(
        database,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    serving.check_tls(settings)  # before anything is built: a bad certificate is one line
    app = create_app(settings)
    listeners = serving.servers(app, settings)
    asyncio.run(serving.serve(listeners))
    if not all(server.started for server in listeners):
        raise typer.Exit(3)  # uvicorn's code for a failed start; its log said why


def worker(
    database: DatabaseOpt = None,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Its name in the database (default host:pid)")
    ] = None,
    slots: Annotated[
        int | None, typer.Option("--slots", help="Tasks it runs at the same time", parser=ascii_int)
    ] = None,
) -> None:
    """Run migration tasks of the distributed mode (CACHEMIGRATE_EXECUTION_MODE=distributed): a
    Celery worker on CACHEMIGRATE_BROKER_URL that claims tasks in CACHEMIGRATE_DATABASE_URL under a
    lease (CACHEMIGRATE_LEASE_SECONDS, renewed every CACHEMIGRATE_HEARTBEAT_SECONDS)."""
    import logging

    from cachemigrate.service.worker import run_worker

    settings = service_settings(database, worker_id=worker_id, worker_slots=slots)
    if settings.execution_mode != "distributed":
        raise ConfigError(
            "cachemigrate worker runs the tasks of the distributed mode: set "
            "CACHEMIGRATE_EXECUTION_MODE=distributed (and the serves' CACHEMIGRATE_DATABASE_URL and "
            "CACHEMIGRATE_BROKER_URL)"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(settings)


def workers(database: DatabaseOpt = None) -> None:
    """List the workers of the distributed mode: heartbeat age, slots, the units they run."""
    from cachemigrate.service.db import leases

    db = open_database(service_settings(database))
    try:
        rows = db.run_sync(leases.list_workers)
        owners = db.run_sync(leases.owners)
    finally:
        db.dispose()
    table = new_table("worker_id", "heartbeat_age_s", "state", "load", "slots", "units", "keys_moved")
    for w in rows:
        units = sorted(t for t, owner in owners.items() if owner == w.id)
        state = "stopped" if w.stopped else ("alive" if w.heartbeat_age < 60 else "silent")
        table.add_row(w.id, f"{w.heartbeat_age:.1f}", state, str(len(units)), str(w.slots),
                      " ".join(units) or "-", str(w.keys_moved))
    print_table(table)


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


AccessKeyArg = Annotated[str, typer.Argument(help="The access key (AK)", show_default=False)]


def credentials_list(project_id: ProjectOpt = None, database: DatabaseOpt = None) -> None:
    """List the AKs (never their SKs): project, created, last used (to the minute), revoked."""
    from cachemigrate.service.db import repo

    db = open_database(service_settings(database))
    try:
        rows = db.run_sync(repo.list_credentials, project_id=project_id)
    finally:
        db.dispose()
    table = new_table("access_key", "project_id", "description", "created_at", "last_used_at", "revoked_at")
    table.columns[0].no_wrap = True  # an AK is what the admin copies: never cut (20 characters)
    table.columns[0].min_width = 20
    for cred in rows:
        revoked = cred.revoked_at or "-"
        if cred.replaced_by:
            revoked += f" (rotated to {cred.replaced_by})"
        used = cred.last_used_at or "-"
        table.add_row(cred.access_key, cred.project_id, cred.description, cred.created_at, used, revoked)
    print_table(table)


def credentials_revoke(access_key: AccessKeyArg, database: DatabaseOpt = None) -> None:
    """Revoke an AK: its signed requests and the X-Auth-Tokens issued under it are refused at once."""
    from cachemigrate.service.db import repo

    db = open_database(service_settings(database))
    try:
        before = db.run_sync(repo.get_credential, access_key=access_key)
        cred = db.run_sync(repo.revoke_credential, access_key=access_key)
    finally:
        db.dispose()
    if cred is None:
        raise ConfigError(f"no access key {access_key}")
    again = before is not None and before.revoked_at is not None
    typer.echo(f"access_key: {access_key}\nrevoked_at: {cred.revoked_at}" + (" (already)" if again else ""))


def credentials_rotate(access_key: AccessKeyArg, database: DatabaseOpt = None) -> None:
    """Replace an AK with a new AK/SK pair of the same project and revoke the old one, at once
    (its tokens too). The new SK is shown only this once."""
    from cachemigrate.service import auth
    from cachemigrate.service.crypto import Cipher
    from cachemigrate.service.db import repo

    settings = service_settings(database)
    cipher = Cipher.from_settings(settings)
    new_ak, new_sk = auth.new_access_key()
    db = open_database(settings)
    try:
        new = db.run_sync(
            repo.replace_credential,
            access_key=access_key,
            new_access_key=new_ak,
            secret_key_enc=cipher.encrypt(new_sk),
        )
        old = db.run_sync(repo.get_credential, access_key=access_key) if new is None else None
    finally:
        db.dispose()
    if new is None:
        if old is None:
            raise ConfigError(f"no access key {access_key}")
        raise ConfigError(
            f"access key {access_key} was revoked at {old.revoked_at}: create a new one with "
            f"`cachemigrate credentials create --project-id {old.project_id}`"
        )
    typer.echo(
        f"project_id: {new.project_id}\naccess_key: {new_ak}\nsecret_key: {new_sk}\nrevoked: {access_key}"
    )


def secrets_rotate(database: DatabaseOpt = None) -> None:
    """Re-encrypt every stored secret (SKs, Redis passwords) under the newest key of
    CACHEMIGRATE_SECRET_KEY ("NEW,OLD"); afterwards the old keys can be dropped."""
    from cachemigrate.service.crypto import Cipher
    from cachemigrate.service.db import repo

    settings = service_settings(database)
    cipher = Cipher.from_settings(settings)
    db = open_database(settings)
    try:
        counts = db.run_sync(repo.reencrypt_all, rotate=cipher.rotate)
    finally:
        db.dispose()
    per_table = ", ".join(f"{table}: {n}" for table, n in counts.items())
    typer.echo(f"re-encrypted {sum(counts.values())} secrets under the newest key ({per_table})")
    if cipher.key_count > 1:
        typer.echo(
            "X-Auth-Tokens issued under the older keys stay valid while those keys are configured; "
            "drop them from CACHEMIGRATE_SECRET_KEY (and restart) when those tokens may expire"
        )


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
        # run_by (distributed mode): the worker that runs the task or ran it last.
        distributed = any(t.run_by for t in rows)
        columns = ["task_id", "project_id", "name", "type", "status", "updated_at", "error"]
        table = new_table(*columns[:5], *(["run_by"] if distributed else []), *columns[5:])
        for t in rows:
            table.add_row(
                t.id,
                t.project_id,
                t.name,
                t.migration_type,
                t.status,
                *([t.run_by or "-"] if distributed else []),
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
    app.command("worker")(worker)
    app.command("workers")(workers)
    credentials = typer.Typer(help="Manage AK/SK credentials of the service.", no_args_is_help=True)
    credentials.command("create")(credentials_create)
    credentials.command("list")(credentials_list)
    credentials.command("revoke")(credentials_revoke)
    credentials.command("rotate")(credentials_rotate)
    app.add_typer(credentials, name="credentials")
    secrets = typer.Typer(help="Manage the keys that encrypt stored secrets.", no_args_is_help=True)
    secrets.command("rotate")(secrets_rotate)
    app.add_typer(secrets, name="secrets")
    app.command("instances")(instances)
    app.command("tasks")(tasks)
