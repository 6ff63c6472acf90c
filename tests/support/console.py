"""The web console's browser tests: Debian's chromium driven by Playwright (never `playwright
install`: its download needs the internet), a tab on the console signed in as a project, and the
service tests' own fixtures (tests/integration/service/conftest.py, loaded from its file:
conftest modules are not importable by a name of their own)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.servers import ROOT

_SERVICE_CONFTEST = ROOT / "tests" / "integration" / "service" / "conftest.py"
_spec = importlib.util.spec_from_file_location("cachemigrate_service_conftest", _SERVICE_CONFTEST)
assert _spec is not None and _spec.loader is not None
service_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = service_conftest  # dataclasses look their module up there
_spec.loader.exec_module(service_conftest)

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
        r = service_conftest.signed(
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
