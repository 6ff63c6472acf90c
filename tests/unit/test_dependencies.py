"""pyproject.toml's dependencies against what src/ imports.

The core dependencies are what the CLI and the engine need; the service, S3 and PostgreSQL stacks
are extras, imported only inside the code that needs them (cli/app.py names the extra when one
is missing). Read from the source text, like tests/unit/test_layers.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

from cachemigrate.cli.app import EXTRAS as EXTRA_OF_MODULE

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "cachemigrate"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME_EXTRAS = ("service", "s3", "postgres", "lua")  # what src/ may use; bench and test are for the repo


def _dist(requirement: str) -> str:
    return _norm(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0])


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


CORE = {_dist(r) for r in PROJECT["dependencies"]}
EXTRAS = {
    extra: {_dist(r) for r in reqs if _dist(r) != "cachemigrate"}
    for extra, reqs in PROJECT["optional-dependencies"].items()
}


@cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> frozenset[str]:
    return frozenset(_norm(d) for d in _installed().get(module, ()))


class _Imports(ast.NodeVisitor):
    """Third-party top-level modules imported, each with whether at module level (eager)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, bool]] = []
        self._lazy = 0

    def _nested(self, node: ast.AST) -> None:
        self._lazy += 1
        self.generic_visit(node)
        self._lazy -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _nested

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            self._nested(node)
        else:
            self.generic_visit(node)

    def _add(self, name: str) -> None:
        top = name.split(".", maxsplit=1)[0]
        if top != "cachemigrate" and top not in sys.stdlib_module_names:
            self.found.append((top, self._lazy == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._add(node.module)


def _imports(*, service: bool) -> dict[str, list[tuple[str, bool]]]:
    """path -> imports, for the files of service/ (service=True) or of everything else."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        if (path.relative_to(SRC).parts[0] == "service") is service:
            visitor = _Imports()
            visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
            out[str(path.relative_to(SRC))] = visitor.found
    return out


def test_cli_and_engine_load_only_core_dependencies() -> None:
    """Importing any module outside service/ needs nothing but the core dependencies."""
    bad = [
        f"{path}: {module}"
        for path, found in _imports(service=False).items()
        for module, eager in found
        if eager and not _distributions(module) & CORE
    ]
    assert not bad, bad


def test_every_import_of_src_is_declared() -> None:
    allowed = CORE.union(*(EXTRAS[e] for e in RUNTIME_EXTRAS))
    bad = [
        f"{path}: {module} {sorted(_distributions(module)) or '(not installed)'}"
        for service in (False, True)
        for path, found in _imports(service=service).items()
        for module, _eager in found
        if not _distributions(module) & allowed
    ]
    assert not bad, bad


def test_every_core_dependency_is_used_outside_the_service() -> None:
    """A core dependency nothing of the CLI or engine imports belongs in an extra (or nowhere)."""
    used = {d for found in _imports(service=False).values() for m, _ in found for d in _distributions(m)}
    assert used >= CORE, sorted(CORE - used)


def test_a_missing_extra_is_named_by_the_cli() -> None:
    """Each module of an extra imported outside service/, and each the service imports, maps to
    its extra in cli/app.py (which prints the pip line when it is missing)."""
    bad = []
    for service in (False, True):
        for path, found in _imports(service=service).items():
            for module, _ in found:
                dists = _distributions(module)
                if dists & CORE:
                    continue
                extra = next((e for e in RUNTIME_EXTRAS if dists & EXTRAS[e]), None)
                named = EXTRA_OF_MODULE.get(module)
                if named != extra:
                    bad.append(f"{path}: {module} is in extra {extra}, cli/app.py names {named}")
    assert not bad, bad


def test_make_installs_every_extra() -> None:
    """`make demo` / `make test` install `.[test]`: it must bring every other extra along, but
    `fuzz` (atheris, only `make fuzz` runs it and installs it itself; the suite runs the fuzz
    oracle over the corpus without it)."""
    test_extra = " ".join(PROJECT["optional-dependencies"]["test"])
    named = set(re.findall(r"cachemigrate\[([^\]]+)\]", test_extra)[0].split(","))
    assert named == set(EXTRAS) - {"test", "all", "fuzz"}, named
    assert "'.[test,fuzz]'" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "'.[test]'" in (ROOT / "Makefile").read_text(encoding="utf-8")
