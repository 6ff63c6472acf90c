"""`cachemigrate CMD --help` as a user runs it, for every command and sub-command.

Help texts are rich markup: a bracket such as the ``[/db]`` of ``redis://[user:password@]host:port[/db]``
is read as a tag and either ends the help in a MarkupError traceback (a closing tag) or silently
disappears (an opening one). Every help must print (exit 0) and show its option texts literally.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer.main

from cachemigrate.cli import app as app_module

CLI = str(Path(sys.executable).parent / "cachemigrate")


def _commands() -> list[tuple[list[str], Any]]:
    """(argv path, click command) of the group and of every command below it."""

    def walk(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app_module.app), []))


def _unmarked(text: str) -> str:
    """What rich shows for a help text: escaped brackets as plain ones, whitespace folded."""
    return " ".join(text.replace("\\[", "[").split())


def _help(path: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TERMINAL_WIDTH": "400", "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([CLI, *path, "--help"], check=False, capture_output=True, text=True,
                          timeout=60, env=env)


def test_every_help_exits_0_and_shows_its_texts_literally() -> None:
    commands = _commands()
    assert {"import", "migrate", "compare", "inspect", "serve", "backups"} <= {p[0] for p, _ in commands if p}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_help, [path for path, _ in commands]))
    failures = []
    for (path, cmd), res in zip(commands, results, strict=True):
        name = " ".join(["cachemigrate", *path])
        if res.returncode != 0 or "Traceback" in res.stderr:
            failures.append(f"{name} --help: exit {res.returncode}: {res.stderr.strip()[-300:]}")
            continue
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
        for param in cmd.params:
            text = getattr(param, "help", None)
            if text and _unmarked(text) not in shown:
                failures.append(f"{name} --help: {param.name}'s help {text!r} not shown literally")
    assert not failures, "\n".join(failures)


def test_url_forms_are_shown_with_their_brackets() -> None:
    res = _help(["import"])
    assert res.returncode == 0, res.stderr
    assert "redis://[user:password@]host:port[/db]" in res.stdout
    res = _help(["migrate"])
    assert res.returncode == 0, res.stderr
    assert "redis://[user:password@]host:port of the live source" in res.stdout
