"""cli/argv.py reads plain `import` / `migrate` command lines without typer.

Whatever it accepts must reach the run function exactly as typer would pass it (same values, same
types); whatever it is unsure of it leaves to typer (None). A run it starts must end as the typer
path does: same exit code, same output.
"""

from __future__ import annotations

import errno
import inspect
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import typer
import typer.main

from cachemigrate.cli import app as app_module
from cachemigrate.cli import argv, import_cmd, import_run, migrate_cmd, migrate_run
from cachemigrate.errors import ConfigError

DECLARED: dict[str, tuple[ModuleType, ModuleType, str]] = {
    # command -> (typer declaration module, run module, run function name)
    "import": (import_cmd, import_run, "run_import"),
    "migrate": (migrate_cmd, migrate_run, "run_migrate"),
}
BASE = {
    "import": ["import", "dump.rdb", "--target", "redis://127.0.0.1:7000"],
    "migrate": ["migrate", "redis://127.0.0.1:7001", "redis://127.0.0.1:7000"],
}
VALUES = ["7", "0", "25", "2.5", "0.125", "abc", "redis://u:p@h:2/3", "s3://b/k.rdb", "C:/x y", "ünï"]


def _click_command(name: str) -> Any:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.callback()(app_module._group)
    DECLARED[name][0].register(app)
    return typer.main.get_command(app).commands[name]


@pytest.fixture(scope="module")
def typer_kwargs() -> Iterator[Callable[[list[str]], dict[str, Any] | None]]:
    """What typer passes to the run function for a command line, or None when it refuses it."""
    got: dict[str, Any] = {}
    saved = {name: getattr(decl, fn) for name, (decl, _, fn) in DECLARED.items()}
    for decl, _, fn in DECLARED.values():
        setattr(decl, fn, lambda **kw: got.update(kw))
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.callback()(app_module._group)
    for decl, _, _ in DECLARED.values():
        decl.register(app)
    command = typer.main.get_command(app)

    def parse(line: list[str]) -> dict[str, Any] | None:
        got.clear()
        try:
            command.main(args=line, prog_name="cachemigrate", standalone_mode=False)
        except Exception:
            return None
        return dict(got)

    yield parse
    for name, (decl, _, fn) in DECLARED.items():
        setattr(decl, fn, saved[name])


def _with_defaults(line: list[str]) -> dict[str, Any] | None:
    parsed = argv.parse(line)
    if parsed is None:
        return None
    _, _, fn = DECLARED[line[0]]
    run = getattr(DECLARED[line[0]][1], fn)
    defaults = {p.name: p.default for p in inspect.signature(run).parameters.values()
                if p.default is not inspect.Parameter.empty}
    return defaults | parsed[1]


def _typed(kwargs: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {k: (type(v), v) for k, v in kwargs.items()}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_tables_match_the_typer_declarations(name: str) -> None:
    grammar = argv.GRAMMARS[name]
    command = _click_command(name)
    run = getattr(DECLARED[name][1], DECLARED[name][2])
    run_params = inspect.signature(run).parameters
    spellings: dict[str, tuple[str, bool | None]] = {}
    positional: list[str] = []
    required: set[str] = set()
    for p in command.params:
        if p.param_type_name == "argument":
            positional.append(p.name)
            assert (p.nargs == -1) == (grammar.variadic and p.name == grammar.positional[-1])
            continue
        if p.required:
            required.add(p.name)
        else:
            assert run_params[p.name].default == p.default, p.name
        for opt in p.opts:
            spellings[opt] = (p.name, True if p.is_flag else None)
        for opt in p.secondary_opts:
            spellings[opt] = (p.name, False)
    assert tuple(positional) == grammar.positional
    assert required == grammar.required
    assert {k: (o.dest, o.flag_value if o.kind == "flag" else None) for k, o in grammar.options.items()} \
        == spellings
    assert set(run_params) == {p.name for p in command.params}


def _corpus(name: str) -> Iterator[list[str]]:
    base = BASE[name]
    grammar = argv.GRAMMARS[name]
    yield base
    for spelling, opt in grammar.options.items():
        if opt.kind == "flag":
            yield [*base, spelling]
            yield [base[0], spelling, *base[1:]]
            continue
        for value in VALUES:
            yield [*base, spelling, value]
            yield [*base, f"{spelling}={value}"]
    flags = [s for s, o in grammar.options.items() if o.kind == "flag" and o.flag_value and s != "-q"]
    yield [*base, *flags]
    values = [x for s, o in grammar.options.items() if o.kind != "flag" for x in (s, "3")]
    yield [base[0], *values, *base[1:], "-q"]
    if name == "import":
        yield ["import", "a.rdb", "b.aof", "s3://bucket/c.rdb", "--target", "redis://h:1", "--quiet"]
        yield ["import", "--target", "redis://h:1", "a.rdb", "--db", "2", "b.rdb"]


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_accepted_lines_reach_the_run_function_as_typer_passes_them(
    name: str, typer_kwargs: Callable[[list[str]], dict[str, Any] | None]
) -> None:
    accepted = 0
    for line in _corpus(name):
        plain = _with_defaults(line)
        if plain is None:
            continue  # left to typer: always safe
        accepted += 1
        typed = typer_kwargs(line)
        assert typed is not None, f"typer refuses {line}"
        assert _typed(plain) == _typed(typed), line
    assert accepted > 40


@pytest.mark.parametrize("line", [
    ["import", "dump.rdb", "--target", "redis://127.0.0.1:6390", "--quiet"],
    ["import", "dump.rdb", "--target=redis://127.0.0.1:6390", "-q", "--big-key-mb", "16"],
    ["import", "s3://bucket/dump.rdb", "--target", "redis://h:1", "--s3-endpoint-url", "http://127.0.0.1:9"],
    ["migrate", "redis://127.0.0.1:1", "redis://127.0.0.1:2", "--quiet"],
    ["migrate", "redis://a:1", "redis://b:2", "--incremental", "--checkpoint", "cp.json",
     "--resume", "manual"],
])
def test_plain_lines_skip_typer(line: list[str]) -> None:
    assert argv.parse(line) is not None


@pytest.mark.parametrize("line", [
    [],
    ["import"],
    ["inspect", "dump.rdb"],
    ["--help"],
    ["import", "--help"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--help"],
    ["import", "dump.rdb"],  # no --target
    ["import", "--target", "redis://h:1"],  # no file
    ["import", "dump.rdb", "--target"],
    ["import", "dump.rdb", "--target", ""],
    ["import", "dump.rdb", "--target="],
    ["import", "", "--target", "redis://h:1"],
    ["import", "-", "--target", "redis://h:1"],
    ["import", "--", "dump.rdb", "--target", "redis://h:1"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--target", "redis://h:2"],
    ["import", "dump.rdb", "--target", "redis://h:1", "-q", "--quiet"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--rewrite", "--no-rewrite"],
    ["import", "dump.rdb", "--target", "redis://h:1", "-qq"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--quiet=1"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--targ", "x"],
    ["import", "dump.rdb", "--target", "-x"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "-1"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "07"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "1_0"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", " 1"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "1.0"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "\uff11"],  # FULLWIDTH DIGIT ONE
    ["import", "dump.rdb", "--target", "redis://h:1", "--db", "9" * 30],
    ["import", "dump.rdb", "--target", "redis://h:1", "--bandwidth-mb", "1e3"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--bandwidth-mb", "inf"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--bandwidth-mb", ".5"],
    ["import", "dump.rdb", "--target", "redis://h:1", "--bandwidth-mb", "5."],
    ["migrate", "redis://a:1"],
    ["migrate", "redis://a:1", "redis://b:2", "redis://c:3"],
    ["migrate", "redis://a:1", "redis://b:2", "--scan", "--scan"],
])
def test_anything_else_is_left_to_typer(line: list[str]) -> None:
    assert argv.parse(line) is None


def test_a_shell_completion_request_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CACHEMIGRATE_COMPLETE", "bash_complete")
    assert argv.prepare(BASE["import"]) is None


# ---- how a run ends -----------------------------------------------------------------------------


def _end(run: Callable[[], object], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str]:
    try:
        run()
        outcome: object = "returned"
    except SystemExit as exc:
        outcome = ("exit", exc.code)
    except BaseException as exc:
        outcome = ("raised", type(exc), str(exc))
    out, err = capsys.readouterr()
    return outcome, out, err


@pytest.mark.parametrize("name", sorted(DECLARED))
@pytest.mark.parametrize("exc", [
    KeyboardInterrupt(),
    EOFError("Compressed file ended before the end-of-stream marker was reached"),
    BrokenPipeError(errno.EPIPE, "Broken pipe"),
    FileNotFoundError(errno.ENOENT, "No such file or directory"),
    ConfigError("redis:// or rediss:// URL expected"),
    RuntimeError("a bug"),
], ids=lambda e: type(e).__name__)
def test_a_run_ends_as_under_typer(
    name: str, exc: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    decl, run_module, fn = DECLARED[name]

    def fail(**kw: object) -> None:
        raise exc

    monkeypatch.setattr(sys, "stdout", sys.stdout)  # a broken pipe wraps them: put them back after
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(run_module, fn, fail)
    monkeypatch.setattr(decl, fn, fail)
    plain = argv.prepare(BASE[name])
    assert plain is not None
    plain_end = _end(plain, capsys)

    app = app_module._app.__wrapped__()  # a fresh application, as main() makes it
    decl.register(app)
    typer_end = _end(lambda: app(args=BASE[name], prog_name="cachemigrate"), capsys)
    assert plain_end == typer_end
