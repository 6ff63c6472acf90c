"""The `cachemigrate` command. Every failure ends with one readable line and a non-zero exit.

Each command lives in its own module and registers itself with ``register(app)``. The modules
import only typer at the top: what a command needs (the engine, the service, rich) is imported
when it runs, so ``--help`` and a command's start-up load nothing another command needs, and a
CLI-only install (no ``[service]``, ``[s3]``, ``[postgres]`` extras) runs every command that does
not need them.
"""

from __future__ import annotations

import sys

import typer

from cachemigrate.cli import (
    backup_cmds,
    compare_cmd,
    cutover_cmd,
    import_cmd,
    inspect_cmd,
    migrate_cmd,
    service_cmds,
)
from cachemigrate.errors import CacheMigrateError

_HELP = "Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service."

# Top-level modules of the optional extras (pyproject.toml) -> the extra that installs them.
EXTRAS = {
    "fastapi": "service",
    "starlette": "service",
    "anyio": "service",
    "pydantic": "service",
    "uvicorn": "service",
    "sqlalchemy": "service",
    "alembic": "service",
    "pydantic_settings": "service",
    "prometheus_client": "service",
    "cryptography": "service",
    "celery": "service",
    "boto3": "s3",
    "botocore": "s3",
    "psycopg": "postgres",
    "lupa": "lua",
}

app = typer.Typer(
    name="cachemigrate",
    help=_HELP,
    no_args_is_help=True,
    add_completion=False,
    # Help texts are rich markup whatever typer's default: a literal "[" is written "\\[".
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service."""
    # A group callback keeps `cachemigrate COMMAND` working when only one command is registered.


for _module in (import_cmd, migrate_cmd, cutover_cmd, inspect_cmd, compare_cmd, service_cmds, backup_cmds):
    _module.register(app)


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The line to print when a command needs an extra that is not installed (else None)."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return (
        f"this command needs the {extra!r} extra, which is not installed (no module {module!r}): "
        f"pip install 'cachemigrate[{extra}]'"
    )


def main() -> None:
    try:
        app()
    except CacheMigrateError as exc:
        print(f"cachemigrate: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("cachemigrate: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:
        print(f"cachemigrate: error: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    except ModuleNotFoundError as exc:
        line = missing_extra(exc)
        if line is None:
            raise
        print(f"cachemigrate: error: {line}", file=sys.stderr)
        sys.exit(1)
