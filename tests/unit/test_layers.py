"""The import rules of ../shared/design/ARCHITECTURE.md, checked on the source text.

cli → service → engine → formats → protocol → errors: a layer imports only layers to its right,
and a few heavy libraries stay out of the layers that must not need them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "cachemigrate"

# package -> cachemigrate packages it must not import
FORBIDDEN_OURS = {
    "errors": {"protocol", "formats", "engine", "service", "cli"},
    "protocol": {"formats", "engine", "service", "cli"},
    "formats": {"engine", "service", "cli"},
    "engine": {"service", "cli"},
    "service": {"protocol", "formats", "cli"},
}
# package -> third-party top-level modules it must not import
FORBIDDEN_LIBS = {
    "formats": {"asyncio", "redis", "fastapi", "pydantic", "sqlalchemy"},
    "protocol": {"fastapi", "pydantic", "sqlalchemy"},
    "engine": {"fastapi", "pydantic", "sqlalchemy", "starlette", "alembic"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_layer_rules(path: Path) -> None:
    layer = _layer(path)
    bad: list[str] = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "cachemigrate" and len(parts) > 1:
            if parts[1] in FORBIDDEN_OURS.get(layer, set()):
                bad.append(name)
        elif parts[0] in FORBIDDEN_LIBS.get(layer, set()):
            bad.append(name)
    assert not bad, f"{path.relative_to(SRC)} ({layer}) imports {bad}"


def test_every_layer_is_checked() -> None:
    layers = {_layer(p) for p in FILES} - {"__init__", "py"}
    assert layers <= set(FORBIDDEN_OURS) | {"cli"}, layers
