"""The web console's browser tests (tests/integration/console/): Debian's chromium driven by
Playwright (never `playwright install`: its download needs the internet) against the service as
`cachemigrate serve` runs it (service/serving.py, the real engine) and real redis-servers.

A plugin (tests/conftest.py names it) rather than a conftest: the service tests import their
conftest by the name ``conftest``, which a second conftest could take from them. The service
tests' own helpers are used (tests/integration/service/conftest.py, loaded from its file). One
service and one browser serve a test module; each test signs in as a project of its own, so
tests see nothing of each other (the project scope is the API's, which the console only calls).
Screenshots and the measured figures go to build/console/ (git-ignored): the artefacts of a run.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.require import require, require_module
from support.servers import ROOT

_SERVICE_CONFTEST = ROOT / "tests" / "integration" / "service" / "conftest.py"


@functools.cache
def service_conftest() -> Any:
    """tests/integration/service/conftest.py as a module of its own name (loaded when a console
    test first needs it: this plugin is loaded for every session)."""
    spec = importlib.util.spec_from_file_location("cachemigrate_service_conftest", _SERVICE_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module

CHROMIUM = "/usr/bin/chromium"
# The flags that work on this machine as root, without a display or network (the machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTEFACTS = ROOT / "build" / "console"
SCREENSHOTS = ARTEFACTS / "screenshots"
# Playwright's auto-waiting expect(): generous, the machine is shared and loaded.
EXPECT_MS = 60_000


# Everything the console's pages load: the HTML, its modules and the stylesheet.
STATIC_DIR = ROOT / "src" / "cachemigrate" / "service" / "console" / "static"
STATIC_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


@contextmanager
def chromium_context(browser: Any, session: str | None = None) -> Iterator[Any]:
    """A page in a new context (an empty cache), signed in with ``session`` when given."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    if session:
        context.add_init_script(f"sessionStorage.setItem('cachemigrate.session', {json.dumps(session)})")
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class Console:
    """A browser tab on the console, and the project (credentials) it signs in as."""

    page: Any
    live: Any
    creds: Any
    name: str
    errors: list[str]

    @property
    def url(self) -> str:
        return f"{self.live.url}/console/"

    def shot(self, what: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def sign_in(self) -> None:
        """With the AK/SK, from the keyboard: type each field, Enter submits."""
        from playwright.sync_api import expect

        page = self.page
        page.goto(self.url)
        page.get_by_label("Project ID").fill(self.creds.project_id)
        page.get_by_label("Access key (AK)").fill(self.creds.ak)
        page.get_by_label("Secret key (SK)").fill(self.creds.sk)
        page.get_by_label("Secret key (SK)").press("Enter")
        expect(page.get_by_role("heading", name="Migration tasks")).to_be_visible(timeout=EXPECT_MS)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The same API, signed as the SDK signs (to compare the page with what the API says)."""
        r = service_conftest().signed(
            self.live, self.creds, method, f"/v2/{self.creds.project_id}{path}", json_body=body
        )
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


@contextmanager
def open_console(browser: Any, live: Any, name: str, creds: Any) -> Iterator[Console]:
    """A fresh browser context (no session) at laptop size, signing in as ``creds``; no script
    error may happen in it."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield Console(page, live, creds, name, errors)
    finally:
        context.close()
    # A failed API call logs a console error in chromium; script errors are ours.
    script_errors = [e for e in errors if "Failed to load resource" not in e]
    assert not script_errors, f"errors in the page: {script_errors}"


@pytest.fixture(scope="module")
def console_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`cachemigrate serve` (API on a free port, the real engine) for the module's tests."""
    helpers = service_conftest()
    tmp = tmp_path_factory.mktemp("console-service")
    settings = helpers.make_settings(
        tmp, host="127.0.0.1", port=helpers.free_port(), metrics_port=helpers.free_port()
    )
    from cachemigrate.service import serving
    from cachemigrate.service.app import create_app

    app = create_app(settings)
    servers = serving.servers(app, settings, log_level="warning")
    thread = threading.Thread(target=asyncio.run, args=(serving.serve(servers),), daemon=True)
    thread.start()
    helpers.wait_until(
        lambda: all(s.started for s in servers) or not thread.is_alive(), timeout=30, what="the service"
    )
    assert thread.is_alive(), "the service did not start"
    svc = helpers.LiveService(
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
def chromium_browser() -> Iterator[Any]:
    require(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM} (.ci/provision chromium)")
    sync_api = require_module("playwright.sync_api", "pip install playwright (the test extra)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console(chromium_browser: Any, console_service: Any, request: pytest.FixtureRequest) -> Iterator[Console]:
    """The console for a new project of its own: the test sees only what it makes."""
    creds = console_service.credentials(project_id=uuid.uuid4().hex)
    with open_console(chromium_browser, console_service, request.node.name.removeprefix("test_"), creds) as c:
        yield c


@pytest.fixture(scope="session")
def console_figures() -> Iterator[dict[str, Any]]:
    """Measured figures of the run, written to build/console/figures.json at the end."""
    out: dict[str, Any] = {}
    yield out
    if out:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        (ARTEFACTS / "figures.json").write_text(json.dumps(out, indent=2))
