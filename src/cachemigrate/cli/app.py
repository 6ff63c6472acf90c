"""The `cachemigrate` command. Every failure ends with one readable line and a non-zero exit."""

from __future__ import annotations

import ctypes
import importlib
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from cachemigrate.cli import argv as plain_argv
from cachemigrate.errors import CacheMigrateError

if TYPE_CHECKING:
    import typer

_HELP = "Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service."
_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


@cache
def _app() -> typer.Typer:
    """The typer application, made on first use: a plain import or migrate runs without typer."""
    import typer

    app = typer.Typer(
        name="cachemigrate",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        # Help texts are rich markup whatever typer's default: a literal "[" is written "\\[".
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    app.callback()(_group)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # `cachemigrate.cli.app.app`, as before typer became lazy
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _group() -> None:
    """Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service."""
    # A group callback keeps `cachemigrate COMMAND` working when only one command is registered.


# Command groups living in their own modules add themselves through register(app). Each module
# is imported only when its command runs (the service's and the online engine's imports cost
# most of a second of start-up, which every one-shot import would pay); --help loads them all.
_COMMAND_MODULES = {
    "import": "cachemigrate.cli.import_cmd",
    "inspect": "cachemigrate.cli.inspect_cmd",
    "compare": "cachemigrate.cli.compare_cmd",
    "migrate": "cachemigrate.cli.migrate_cmd",
    "serve": "cachemigrate.cli.service_cmds",
    "credentials": "cachemigrate.cli.service_cmds",
    "instances": "cachemigrate.cli.service_cmds",
    "tasks": "cachemigrate.cli.service_cmds",
    "backups": "cachemigrate.cli.backup_cmds",
}


def _register(argv: list[str]) -> None:
    command = next((a for a in argv if not a.startswith("-")), None)
    wanted = _COMMAND_MODULES.get(command or "")
    names = [wanted] if wanted else list(dict.fromkeys(_COMMAND_MODULES.values()))
    for name in names:
        importlib.import_module(name).register(_app())


def _tune_malloc() -> None:
    """Keep big buffers (8 MiB file chunks, big values) in mmap so freeing them returns memory.

    glibc raises its mmap threshold after the first big free, after which big buffers come from
    the heap and fragment it: peak RSS of the big-key import varied 165-245 MB with the default
    and holds lower with a fixed 1 MiB threshold (see the closing notes of the big-key work).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (musl...): nothing to tune
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 4 << 20)


def main() -> None:
    _tune_malloc()
    argv = sys.argv[1:]
    # Plain import/migrate command lines skip typer (cli/argv.py); everything else, and anything
    # that reader is unsure of, goes through typer.
    plain = plain_argv.prepare(argv)
    if plain is None:
        _register(argv)
    try:
        if plain is not None:
            plain()
        else:
            _app()()
    except CacheMigrateError as exc:
        print(f"cachemigrate: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("cachemigrate: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:
        print(f"cachemigrate: error: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
