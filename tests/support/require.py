"""Prerequisites of tests: in CI a missing one fails the test, on a developer's machine it skips.

CI (``CI`` set to anything but ``""``, ``0``, ``false`` or ``no``; ``.ci/run`` sets it) runs on a
fresh machine that ``make test`` provisions: a missing corpus, PostgreSQL, Redis 6.0.9 binary, C
walker, TLS-capable redis-server, haproxy, chromium, RabbitMQ or Valkey there means the gate is
not testing what it claims, so it must be red. Locally a skip that names what is missing and how
to get it is the friendlier answer.

Use it in one of two ways, never ``pytest.skip``/``skipif``/``importorskip`` directly::

    from support.require import require, requirement

    require(shutil.which("haproxy"), "haproxy (apt-get install haproxy)")   # inside a test/fixture
    pytestmark = requirement(FILES, "the shared corpus (../shared/corpus or CACHEMIGRATE_CORPUS)")

``requirement`` returns a ``requires`` mark that ``tests/conftest.py`` checks before the test runs.
As a backstop, ``tests/conftest.py`` turns every other skip in CI into a failure too (an empty
parameter list from a missing corpus, a stray ``pytest.skip``), so a green CI run skipped nothing.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

CI_ENV = "CI"
C_WALKER = (
    "the C walker cachemigrate.formats.rdb._walk (make install builds it with gcc; "
    "CACHEMIGRATE_NO_EXT and CACHEMIGRATE_PURE_PYTHON unset)"
)


def in_ci() -> bool:
    return os.environ.get(CI_ENV, "").strip().lower() not in ("", "0", "false", "no")


def require(ok: object, missing: str) -> None:
    """Go on when ``ok`` is truthy; otherwise fail (CI) or skip (locally), saying ``missing``.

    ``missing`` says what is missing and how to get it, e.g. "the Redis 6.0.9 binary in
    .venv/redis6 (make install)".
    """
    if ok:
        return
    if in_ci():
        pytest.fail(f"missing in CI (CI={os.environ.get(CI_ENV)}): {missing}", pytrace=False)
    pytest.skip(f"missing: {missing}", allow_module_level=True)


def requirement(ok: object, missing: str) -> pytest.MarkDecorator:
    """The mark form of ``require`` for ``pytestmark = ...`` and decorators (checked at setup)."""
    return pytest.mark.requires(bool(ok), missing)


def require_module(name: str, how: str) -> ModuleType:
    """Import ``name`` or fail/skip like ``require`` (the stand-in for ``pytest.importorskip``)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"the Python module {name} ({exc}); {how}")
        raise  # unreachable: require raised


def check_marks(item: pytest.Item) -> None:
    """Apply every ``requires`` mark of ``item`` (called from ``pytest_runtest_setup``)."""
    for mark in item.iter_markers("requires"):
        ok, missing = mark.args
        require(ok, missing)
