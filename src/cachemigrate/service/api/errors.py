"""The HTTP edge of errors: DCS-shaped bodies (spec §2.4, §7) for every failure.

Domain code raises the errors of ``cachemigrate.errors``; ``dcs_error`` is the one place that
chooses the HTTP status and DCS code each of them answers with.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cachemigrate.errors import (
    CacheMigrateError,
    CredentialsError,
    ForbiddenError,
    InvalidParameterError,
    NotFoundError,
    PasswordRejectedError,
    ProjectIdError,
    QuotaError,
    ScopeError,
    StateError,
)

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json;charset=UTF-8"


class DcsJSONResponse(JSONResponse):
    media_type = JSON_MEDIA_TYPE


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (spec §2.4); signature failures add ``request_id``."""

    error_code: str
    error_msg: str
    error_ext_msg: str | None = None
    request_id: str | None = None


class DcsError(Exception):
    """An error answered as ``{"error_code", "error_msg", "error_ext_msg"}``."""

    def __init__(self, status: int, code: str, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


# The gateway's code for a request it will not take in (status 413 here: the body is too large).
TOO_LARGE_CODE = "APIG.0201"


def body_too_large(limit: int) -> DcsError:
    message = f"Request entity too large: a request body may have at most {limit} bytes."
    return DcsError(413, TOO_LARGE_CODE, message)


def invalid(field: str, why: str = "") -> DcsError:
    suffix = f": {why}" if why else "."
    return DcsError(400, "DCS.4063", f"Invalid {field} parameter in the request{suffix}")


# NotFoundError.kind -> (status, code, message): the live service's answers (spec §7, §9.1).
_NOT_FOUND: dict[str, tuple[int, str, str]] = {
    "task": (400, "DCS.4133", "The migration task does not exist."),
    "instance": (404, "DCS.3022", "The DCS instance does not exist."),
    "backup": (400, "DCS.4087", "The backup record {ident} does not exist."),
    "job": (400, "DCS.4063", "Invalid job_id parameter in the request: no such job."),
    "verification": (
        400, "DCS.4063", "Invalid verification_id parameter in the request: no such verification."
    ),
}
# StateError.kind -> code (always a 400); first (kind, operation, state) for those with their own.
_WRONG_STATE = {"task": "DCS.4957", "backup": "DCS.4087"}
_WRONG_STATE_OF = {
    ("backup", "delete", "waiting"): "DCS.4096",  # being backed up
    ("backup", "delete", "backuping"): "DCS.4096",
    ("backup", "delete", "restoring"): "DCS.4097",  # being restored: a running import reads it
}


def dcs_error(exc: CacheMigrateError) -> DcsError | None:
    """The DCS answer to a domain error; None for an error that is ours (a 500)."""
    match exc:
        case NotFoundError(kind=kind, ident=ident) if kind in _NOT_FOUND:
            status, code, text = _NOT_FOUND[kind]
            return DcsError(status, code, text.format(ident=ident))
        case StateError(kind=kind, operation=op, state=state) if (kind, op, state) in _WRONG_STATE_OF:
            return DcsError(400, _WRONG_STATE_OF[kind, op, state], str(exc))
        case StateError(kind=kind) if kind in _WRONG_STATE:
            return DcsError(400, _WRONG_STATE[kind], str(exc))
        case InvalidParameterError(field=field, reason=reason):
            return invalid(field, reason)
        case PasswordRejectedError():
            return DcsError(400, "DCS.4080", str(exc))
        case ProjectIdError():
            return DcsError(400, "DCS.4002", str(exc))
        case QuotaError():
            return DcsError(400, "DCS.4039", str(exc))
        case CredentialsError():
            return DcsError(401, "APIG.0301", f"Incorrect IAM authentication information: {exc}")
        case ScopeError():
            return DcsError(403, "DCS.1004", str(exc))
        case ForbiddenError():
            return DcsError(403, "DCS.2007", str(exc))
    return None


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
    response = DcsJSONResponse(content, status_code=exc.status)
    if exc.status == 413:
        # The rest of the body stays unread: the server must not wait for it on this connection.
        response.headers["connection"] = "close"
    return response


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

    async def on_domain(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, CacheMigrateError)
        err = dcs_error(exc)
        if err is None:
            # Ours, not the caller's (a stored secret the key cannot open, a bad bucket setting):
            # the operator's log says what, the caller learns nothing about the service.
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            err = DcsError(500, "DCS.5000", "Internal service error.")
        return render(request, err)

    async def on_validation(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, RequestValidationError)
        return render(request, _validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> DcsJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err = DcsError(404, "DCS.4001", "The requested URL does not exist.")
        elif exc.status_code == 413:  # api/body_limit.py: the detail is body_too_large's message
            err = DcsError(413, TOO_LARGE_CODE, str(exc.detail))
        elif exc.status_code == 405:
            err = DcsError(405, "DCS.5001", "The HTTP method is not allowed.")
        elif exc.status_code >= 500:
            err = DcsError(exc.status_code, "DCS.5000", "Internal service error.")
        else:
            err = DcsError(exc.status_code, "DCS.4000", str(exc.detail))
        return render(request, err)

    app.add_exception_handler(DcsError, on_dcs)
    app.add_exception_handler(CacheMigrateError, on_domain)
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
