"""The build hook (hatch_build.py) compiles the C accelerator whenever a C compiler is present."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "cachemigrate" / "formats" / "rdb" / "_walk.c"


def _skip(reason: str) -> None:
    print(f"skipped: {reason}")
    pytest.skip(reason)


def test_walk_extension_is_built_when_a_compiler_is_present() -> None:
    if not (shutil.which("cc") or shutil.which("gcc")):
        _skip("no C compiler (cc/gcc) on PATH: the pure-Python fallback is used")
    if os.environ.get("CACHEMIGRATE_NO_EXT", "") not in ("", "0"):
        _skip("CACHEMIGRATE_NO_EXT is set: the extension is deliberately not built")
    if not SOURCE.is_file():
        _skip(f"{SOURCE.name} is not in the source tree yet")
    try:
        importlib.import_module("cachemigrate.formats.rdb._walk")
    except ImportError as exc:
        pytest.fail(
            f"cachemigrate.formats.rdb._walk did not import ({exc}); rebuild with "
            "`.venv/bin/pip install -e .` (or `make install`) and read the hook's warning with -v"
        )
