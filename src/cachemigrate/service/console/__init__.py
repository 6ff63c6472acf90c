"""The web console: static pages at ``/console`` that call the REST API from the browser.

It is a client of the API and nothing more: the browser signs in (an AK/SK-signed
``POST /v2/{project_id}/auth/tokens``, or a token pasted in), then sends every request with
``X-Auth-Token``; what a project sees is what the API shows it. The assets are hand-written ES
modules, CSS and an SVG chart shipped in the package (``static/``): no build step, no CDN, so
the console works on a machine without internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

# Only the console's own files run; nothing is framed; the token in a link's #fragment never
# leaves the page as a Referer.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Small files: always revalidated (ETag), so an upgraded service serves its new console.
    (b"cache-control", b"no-cache"),
]


class _Headers:
    """Adds SECURITY_HEADERS to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def mount(app: FastAPI) -> None:
    """Serve the console at /console/ (and /console -> /console/)."""

    @app.get(PREFIX, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.mount(PREFIX, _Headers(StaticFiles(directory=STATIC, html=True)), name="console")
