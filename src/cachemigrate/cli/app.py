"""The `cachemigrate` command. Every failure ends with one readable line and a non-zero exit."""

from __future__ import annotations

import importlib
import sys

import typer

from cachemigrate.errors import CacheMigrateError

app = typer.Typer(
    name="cachemigrate",
    help="Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups living in their own modules add themselves through register(app).
_COMMAND_MODULES = (
    "cachemigrate.cli.import_cmd",
    "cachemigrate.cli.inspect_cmd",
    "cachemigrate.cli.compare_cmd",
    "cachemigrate.cli.migrate_cmd",
    "cachemigrate.cli.service_cmds",
    "cachemigrate.cli.backup_cmds",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


def main() -> None:
    _register_all()
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
