"""A CLI-only install: the commands run with nothing but the core dependencies.

A fresh `pip install .` in a new venv takes a while (the C walker is compiled); here the commands
run in this venv with every installed distribution that the core dependencies do not pull in
made unimportable, which is what such an install sees. No server is started: a target on port 1
refuses at once, and that failure must still be one readable line.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
CORE = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]

# The child blocks the modules named in argv[1] (comma-separated), then runs the CLI on argv[2:].
CHILD = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
sys.argv = ["cachemigrate", *sys.argv[2:]]
from cachemigrate.cli.app import main
main()
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install, with their own requirements (no extras)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
    return seen


def _blocked() -> str:
    allowed = _closure(CORE) | {"cachemigrate"}
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if not {_norm(d) for d in dists} & allowed and module.isidentifier()
    }
    # What the extras bring must be among them, or this test proves nothing.
    assert {"fastapi", "sqlalchemy", "uvicorn", "boto3", "psycopg", "pydantic", "psutil"} <= modules
    return ",".join(sorted(modules))


BLOCKED = _blocked()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, BLOCKED, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cachemigrate: error: "), res.stderr
    return lines[0]


@pytest.fixture
def rdb(tmp_path: Path) -> Path:
    """One string key in db 0 (RDB 9, checksum disabled)."""
    path = tmp_path / "one.rdb"
    path.write_bytes(b"REDIS0009" + b"\xfe\x00" + b"\x00\x01k\x01v" + b"\xff" + b"\x00" * 8)
    return path


@pytest.mark.parametrize("command", [
    "", "import", "migrate", "cutover", "rollback", "inspect", "compare", "serve", "backups",
])
def test_every_help_prints(command: str) -> None:
    res = cli(*([command] if command else []), "--help")
    assert res.returncode == 0 and "Usage" in res.stdout, res.stderr


def test_inspect_runs(rdb: Path) -> None:
    res = cli("inspect", str(rdb), "--json")
    assert res.returncode == 0, res.stderr
    assert '"keys": 1' in res.stdout


def test_import_and_migrate_run_up_to_the_server(rdb: Path) -> None:
    # The whole engine loads; what stops them is the refused connection, told in one line.
    assert "cannot connect to redis://127.0.0.1:1:" in one_error_line(
        cli("import", str(rdb), "--target", "redis://127.0.0.1:1", "-q")
    )
    assert "cannot connect to redis://127.0.0.1:" in one_error_line(
        cli("migrate", "redis://127.0.0.1:1", "redis://127.0.0.1:2", "-q")
    )


@pytest.mark.parametrize("args", [("serve",), ("tasks",), ("credentials", "create", "--project-id", "p1234")])
def test_service_commands_name_the_missing_extra(args: tuple[str, ...]) -> None:
    line = one_error_line(cli(*args))
    assert "pip install 'cachemigrate[service]'" in line
