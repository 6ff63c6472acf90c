"""The request body limit, enforced before the body is read (Settings ``max_body_bytes``).

FastAPI reads and parses a JSON body before any dependency runs, authentication included, so an
unsigned 100 MB POST used to be held (and parsed) whole before its 401. This pure ASGI middleware
sits in front of everything: a ``Content-Length`` over the limit is answered 413 at once (the app
never runs, nothing is read), and a body without one (chunked) is counted as ``receive`` hands it
over and cut off as soon as it passes the limit. Either way at most the limit plus one chunk of
it is ever in memory, and the 413 says ``Connection: close`` so the server stops reading the rest.

(FastAPI's own ``max_body_size`` checks ``Content-Length`` only at the first ``receive`` and can
answer with a plain-text 413; every answer here is DCS-shaped.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cachemigrate.service.api import errors


class BodyTooLargeError(HTTPException):
    """Raised from ``receive`` once a body passes the limit. An HTTPException, because FastAPI's
    body reader passes those on (any other exception becomes its own 400); the app's HTTP
    exception handler (api/errors.py) answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=errors.body_too_large(limit).message)


def declared_length(scope: Scope) -> int | None:
    """The largest ``Content-Length`` the request declares (the server rejects malformed ones)."""
    values = Headers(scope=scope).getlist("content-length")
    lengths = [int(v) for v in values if v.strip().isdigit()]
    return max(lengths) if lengths else None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            # Raised where no exception handler answers it (outside the routes' own handling).
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.render(Request(scope), errors.body_too_large(self.limit))
        await response(scope, receive, send)
