"""The build hook (hatch_build.py) compiles the C accelerator whenever a C compiler is present."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

from support.require import require

SOURCE = Path(__file__).resolve().parents[2] / "src" / "cachemigrate" / "formats" / "rdb" / "_walk.c"


def test_walk_extension_is_built_when_a_compiler_is_present() -> None:
    require(shutil.which("cc") or shutil.which("gcc"), "a C compiler, cc or gcc (apt-get install gcc)")
    require(
        os.environ.get("CACHEMIGRATE_NO_EXT", "") in ("", "0"),
        "the C extension: CACHEMIGRATE_NO_EXT is set, so it is deliberately not built",
    )
    assert SOURCE.is_file(), SOURCE
    try:
        importlib.import_module("cachemigrate.formats.rdb._walk")
    except ImportError as exc:
        pytest.fail(
            f"cachemigrate.formats.rdb._walk did not import ({exc}); rebuild with "
            "`.venv/bin/pip install -e .` (or `make install`) and read the hook's warning with -v"
        )
