"""The `cachemigrate` command. Every failure ends with one readable line and a non-zero exit."""

from __future__ import annotations

import ctypes
import importlib
import sys

import typer

from cachemigrate.errors import CacheMigrateError

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3

app = typer.Typer(
    name="cachemigrate",
    help="Migrate data into Redis-compatible caches: RDB/AOF import, online sync, DCS-compatible service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
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
        importlib.import_module(name).register(app)


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
    _register(sys.argv[1:])
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
