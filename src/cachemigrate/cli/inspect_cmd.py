"""`cachemigrate inspect FILE`: what an RDB holds, without a server.

The options are declared here; inspect_run.run_inspect does the work.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_file)


def inspect_file(
    path: Annotated[str, typer.Argument(help="an RDB file")],
    top: Annotated[int, typer.Option(help="how many of the biggest keys to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print version, producer, keys per db and per type, and the biggest keys of an RDB file."""
    from cachemigrate.cli.inspect_run import run_inspect

    run_inspect(path=path, top=top, as_json=as_json)
