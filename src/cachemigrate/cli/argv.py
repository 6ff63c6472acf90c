"""Plain `cachemigrate import` and `cachemigrate migrate` command lines, read without typer.

Loading typer (which builds a pydantic TypeAdapter per option) cost about a third of a second of
CPU before a one-shot import read its first byte. This reader takes the command lines it is sure
of: the command name first, then known options (``--opt value``, ``--opt=value``, flags) and the
positional arguments in any order, each option at most once, values that do not start with "-",
numbers in plain decimal. Anything else (--help, an unknown, repeated or misspelt option, "--",
an empty or odd value, a missing argument) is left to typer as before, so help texts, usage errors
and their exit codes stay typer's own.

The tables below mirror the typer declarations in import_cmd.py and migrate_cmd.py; both paths
call the same import_run.run_import / migrate_run.run_migrate with the same keyword arguments.
tests/unit/cli/test_argv.py checks the tables and the parsed values against typer's.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Callable
from typing import Literal, NoReturn

Kind = Literal["flag", "str", "int", "float"]


class Opt:
    """One option spelling: the run function's keyword it sets, and how its value is read."""

    __slots__ = ("dest", "flag_value", "kind")

    def __init__(self, dest: str, kind: Kind, flag_value: bool = True) -> None:
        self.dest = dest
        self.kind = kind
        self.flag_value = flag_value  # a flag: what this spelling sets (--no-rewrite: False)


class Grammar:
    """One command: its run function, positional arguments and option spellings.

    (Plain classes, not dataclasses: a dataclass costs about a millisecond to create here.)
    """

    __slots__ = ("options", "positional", "required", "runner", "variadic")

    def __init__(
        self, runner: str, positional: tuple[str, ...], *, variadic: bool,
        options: dict[str, Opt], required: frozenset[str] = frozenset(),
    ) -> None:
        self.runner = runner  # "module:function", called with the parsed keyword arguments
        self.positional = positional  # names, in order
        self.variadic = variadic  # the last positional takes one or more values (a list)
        self.options = options
        self.required = required  # options without a default (their dest)


def _flag(dest: str) -> Opt:
    return Opt(dest, "flag")


GRAMMARS: dict[str, Grammar] = {
    "import": Grammar(
        "cachemigrate.cli.import_run:run_import", ("files",), variadic=True,
        options={
            "--target": Opt("target", "str"),
            "--no-replace": _flag("no_replace"),
            "--rewrite": _flag("rewrite"),
            "--no-rewrite": Opt("rewrite", "flag", flag_value=False),
            "--big-key-mb": Opt("big_key_mb", "int"),
            "--bandwidth-mb": Opt("bandwidth_mb", "float"),
            "--db": Opt("db", "int"),
            "--fold-dbs": _flag("fold_dbs"),
            "--flush-target": _flag("flush_target"),
            "--s3-endpoint-url": Opt("s3_endpoint_url", "str"),
            "--quiet": _flag("quiet"),
            "-q": _flag("quiet"),
        },
        required=frozenset({"target"}),
    ),
    "migrate": Grammar(
        "cachemigrate.cli.migrate_run:run_migrate", ("source_url", "target_url"), variadic=False,
        options={
            "--incremental": _flag("incremental"),
            "--bandwidth-mb": Opt("bandwidth_mb", "float"),
            "--db": Opt("db", "int"),
            "--fold-dbs": _flag("fold_dbs"),
            "--resume": Opt("resume", "str"),
            "--checkpoint": Opt("checkpoint", "str"),
            "--scan": _flag("scan"),
            "--flush-target": _flag("flush_target"),
            "--quiet": _flag("quiet"),
            "-q": _flag("quiet"),
        },
    ),
}


def parse(argv: list[str]) -> tuple[Grammar, dict[str, object]] | None:
    """(grammar, keyword arguments) for a command line this module is sure of, else None."""
    grammar = GRAMMARS.get(argv[0]) if argv else None
    if grammar is None:
        return None
    values: dict[str, object] = {}
    positional: list[str] = []
    i = 1
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-"):
            if not token:
                return None
            positional.append(token)
            continue
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        opt = grammar.options.get(name)
        if opt is None or opt.dest in values:
            return None
        if opt.kind == "flag":
            if eq:
                return None
            values[opt.dest] = opt.flag_value
            continue
        if eq:
            raw = inline
        elif i < len(argv):
            raw = argv[i]
            i += 1
        else:
            return None
        value = _value(opt.kind, raw)
        if value is None:
            return None
        values[opt.dest] = value
    if not grammar.required <= values.keys():
        return None
    names = grammar.positional
    if grammar.variadic:
        if len(positional) < len(names):
            return None
        values.update(zip(names[:-1], positional, strict=False))
        values[names[-1]] = positional[len(names) - 1:]
    else:
        if len(positional) != len(names):
            return None
        values.update(zip(names, positional, strict=True))
    return grammar, values


def _value(kind: Kind, raw: str) -> object | None:
    """The value typer would pass, or None when it is not plainly so (typer then decides)."""
    if not raw or raw.startswith("-"):
        return None
    if kind == "str":
        return raw
    if kind == "int":
        return int(raw) if _decimal(raw) else None
    whole, dot, frac = raw.partition(".")
    if _decimal(whole) and (not dot or (frac.isascii() and frac.isdigit() and len(frac) <= 18)):
        return float(raw)
    return None


def _decimal(s: str) -> bool:
    """Plain non-negative decimal digits, no sign, no leading zero, no "_", at most 18 of them."""
    return s.isascii() and s.isdigit() and len(s) <= 18 and (s == "0" or s[0] != "0")


def prepare(argv: list[str]) -> Callable[[], None] | None:
    """The run of a command line this module is sure of (its module imported), else None.

    Calling it ends as the run would under typer: our errors (CacheMigrateError, OSError) go to
    the caller's one-line handler; Ctrl-C exits 130 without a word; an EOFError or a broken pipe
    is handed to typer, which prints and exits as it always did.
    """
    if any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None  # a shell-completion request: typer's business
    parsed = parse(argv)
    if parsed is None:
        return None
    grammar, kwargs = parsed
    module, _, function = grammar.runner.partition(":")
    runner: Callable[..., None] = getattr(importlib.import_module(module), function)

    def run() -> None:
        try:
            runner(**kwargs)
        except KeyboardInterrupt:
            sys.exit(130)  # typer: Exit(130), nothing printed
        except EOFError as exc:
            _end_as_typer(exc)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _end_as_typer(exc)
            raise

    return run


def _end_as_typer(exc: BaseException) -> NoReturn:
    """Raise ``exc`` inside a throwaway typer command: typer prints and exits as it would have."""
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def _reraise() -> None:
        raise exc

    app(args=[], prog_name="cachemigrate")
    raise AssertionError("typer returned after an exception")  # pragma: no cover
