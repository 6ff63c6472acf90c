"""DCS-shaped errors (spec §2.4, §7) and the handlers that render every failure in that shape."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json;charset=UTF-8"


class DcsJSONResponse(JSONResponse):
    media_type = JSON_MEDIA_TYPE


class DcsError(Exception):
    """An error answered as ``{"error_code", "error_msg", "error_ext_msg"}``."""

    def __init__(self, status: int, code: str, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


def task_not_found(task_id: str = "") -> DcsError:
    return DcsError(400, "DCS.4133", "The migration task does not exist.")


def wrong_state(status: str, operation: str) -> DcsError:
    return DcsError(400, "DCS.4957", f"Operation {operation} is not allowed when the task is {status}.")


def invalid(field: str, why: str = "") -> DcsError:
    suffix = f": {why}" if why else "."
    return DcsError(400, "DCS.4063", f"Invalid {field} parameter in the request{suffix}")


def instance_not_found() -> DcsError:
    return DcsError(404, "DCS.3022", "The DCS instance does not exist.")


def auth_failed(message: str = "verify aksk signature fail") -> DcsError:
    return DcsError(401, "APIG.0301", f"Incorrect IAM authentication information: {message}")


def body(request_id: str | None, code: str, message: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"error_code": code, "error_msg": message[:1024], "error_ext_msg": None}
    if request_id is not None and code.startswith("APIG"):
        out["request_id"] = request_id
    out.update(extra)
    return out


def request_id_of(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else ""


def render(request: Request, exc: DcsError) -> DcsJSONResponse:
    content = body(request_id_of(request), exc.code, exc.message, **exc.extra)
    return DcsJSONResponse(content, status_code=exc.status)


def _validation_error(exc: RequestValidationError) -> DcsError:
    errors = exc.errors()
    for err in errors:
        kind = err.get("type", "")
        loc = [str(x) for x in err.get("loc", ())]
        if kind == "json_invalid":
            return DcsError(400, "DCS.4005", "The request body is not valid JSON.")
        if loc == ["body"] and kind in ("missing", "model_attributes_type", "dict_type"):
            if kind == "missing":
                return DcsError(400, "DCS.4004", "The request body is empty.")
            return DcsError(400, "DCS.4005", "The request body must be a JSON object.")
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path", "header")]
    field = ".".join(loc) or "request"
    return invalid(field, str(first.get("msg", "")))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a DCS error body."""

    async def on_dcs(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, DcsError)
        return render(request, exc)

    async def on_validation(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, RequestValidationError)
        return render(request, _validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err = DcsError(404, "DCS.4001", "The requested URL does not exist.")
        elif exc.status_code == 405:
            err = DcsError(405, "DCS.5001", "The HTTP method is not allowed.")
        elif exc.status_code >= 500:
            err = DcsError(exc.status_code, "DCS.5000", "Internal service error.")
        else:
            err = DcsError(exc.status_code, "DCS.4000", str(exc.detail))
        return render(request, err)

    app.add_exception_handler(DcsError, on_dcs)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


class RequestIdMiddleware:
    """Gives each request an id (``request.state.request_id``) and sends it as ``X-Request-Id``.

    It also turns an unhandled exception into a DCS.5000 body: it wraps the whole app, so even a
    crash answers with the request id (Starlette's own error middleware would not).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_id(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = DcsJSONResponse(body(rid, "DCS.5000", "Internal service error."), status_code=500)
            await response(scope, receive, send_with_id)
