"""The console in a real browser: Debian's chromium driven by Playwright against the service as
`cachemigrate serve` runs it (service/serving.py, the real engine) and real redis-servers.

One service and one browser serve a module; each test signs in as a project of its own, so tests
see nothing of each other (the project scope is the API's, which the console only calls).
Screenshots and the measured figures go to build/console/ (git-ignored): the artefacts of a run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.console import ARTEFACTS, CHROMIUM, CHROMIUM_ARGS, Console, open_console, service_conftest
from support.require import require, require_module


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`cachemigrate serve` (API on a free port, the real engine) for the module's tests."""
    tmp = tmp_path_factory.mktemp("console-service")
    settings = service_conftest.make_settings(
        tmp, host="127.0.0.1", port=service_conftest.free_port(), metrics_port=service_conftest.free_port()
    )
    from cachemigrate.service import serving
    from cachemigrate.service.app import create_app

    app = create_app(settings)
    servers = serving.servers(app, settings, log_level="warning")
    thread = threading.Thread(target=asyncio.run, args=(serving.serve(servers),), daemon=True)
    thread.start()
    service_conftest.wait_until(
        lambda: all(s.started for s in servers) or not thread.is_alive(), timeout=30, what="the service"
    )
    assert thread.is_alive(), "the service did not start"
    svc = service_conftest.LiveService(
        url=f"http://127.0.0.1:{settings.port}",
        metrics_url=f"http://127.0.0.1:{settings.metrics_port}/metrics",
        settings=settings,
        app=app,
        servers=servers,
        thread=thread,
        port=settings.port,
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM} (.ci/provision chromium)")
    sync_api = require_module("playwright.sync_api", "pip install playwright (the test extra)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console(browser: Any, live: Any, request: pytest.FixtureRequest) -> Iterator[Console]:
    """The console for a new project of its own: the test sees only what it makes."""
    creds = live.credentials(project_id=uuid.uuid4().hex)
    with open_console(browser, live, request.node.name.removeprefix("test_"), creds) as c:
        yield c


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, Any]]:
    """Measured figures of the run, written to build/console/figures.json at the end."""
    out: dict[str, Any] = {}
    yield out
    if out:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        (ARTEFACTS / "figures.json").write_text(json.dumps(out, indent=2))
