"""Annotated dependencies: the app's services, the authenticated project, pagination."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from prometheus_client import CollectorRegistry

from cachemigrate.errors import ConfigError, CredentialsError, InvalidParameterError, NotFoundError
from cachemigrate.service import auth
from cachemigrate.service.api.errors import ErrorBody
from cachemigrate.service.api.fields import unstorable
from cachemigrate.service.backups import BackupService
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Credential
from cachemigrate.service.db.session import Database
from cachemigrate.service.runner import Runner
from cachemigrate.service.settings import Settings
from cachemigrate.service.tasks import TaskService
from cachemigrate.service.verifications import VerificationService


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    db: Database
    cipher: Cipher
    runner: Runner
    tasks: TaskService
    backups: BackupService
    verifications: VerificationService
    registry: CollectorRegistry
    version: str


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
ProjectIdPath = Annotated[str, Path(description="Project ID; must match the credentials and X-Project-Id")]


# How stale a credential's last_used_at may get before a request writes it again.
LAST_USED_RESOLUTION_SECONDS = 60.0


def _secret_of(services: Services, cred: Credential | None) -> str | None:
    if cred is None:
        return None
    try:
        return services.cipher.decrypt(cred.secret_key_enc)
    except ConfigError:
        return None


async def _signed_principal(request: Request, services: Services, authorization: str) -> auth.Principal:
    access_key = auth.access_key_of(authorization)
    cred = await services.db.call(repo.get_credential, access_key=access_key) if access_key else None
    secret = _secret_of(services, cred)
    req = auth.SignedRequest(
        method=request.method,
        raw_path=(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1"),
        raw_query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=await request.body(),
    )
    auth.verify_signature(
        req,
        authorization,
        secret_for=lambda _ak: secret,
        skew_seconds=services.settings.clock_skew_seconds,
    )
    assert cred is not None  # no credential, no secret: verify_signature refused
    # Only a caller holding the SK learns that the AK is revoked (the signature is checked first).
    if cred.revoked_at is not None:
        raise CredentialsError("the access key was revoked")
    await _mark_used(services, cred)
    return auth.Principal(cred.project_id, cred.access_key, "aksk")


async def _token_principal(services: Services, token: str) -> auth.Principal:
    principal = auth.verify_token(services.cipher, token)
    # A token lives only as long as the AK it was issued under: one lookup per request.
    cred = await services.db.call(repo.get_credential, access_key=principal.access_key)
    if cred is None or cred.revoked_at is not None or cred.project_id != principal.project_id:
        raise CredentialsError("the credentials of this token were revoked")
    await _mark_used(services, cred)
    return principal


async def _mark_used(services: Services, cred: Credential) -> None:
    now = time.time()
    if cred.last_used_at is None or cred.last_used_at < repo.iso_of(now - LAST_USED_RESOLUTION_SECONDS):
        await services.db.call(repo.touch_credential, access_key=cred.access_key, at=repo.iso_of(now))


async def authenticate(request: Request, project_id: ProjectIdPath, services: ServicesDep) -> auth.Principal:
    """SDK-HMAC-SHA256 signature (or X-Auth-Token) of an active AK, then the project scope of
    §2.1 and §9.11."""
    auth.check_project_format(project_id)
    authorization = request.headers.get("authorization")
    token = request.headers.get("x-auth-token")
    if authorization and authorization.split(" ", 1)[0] in auth.HASHES:
        principal = await _signed_principal(request, services, authorization)
    elif token:
        principal = await _token_principal(services, token)
    else:
        raise CredentialsError("x-auth-token not found" if not authorization else "unsupported Authorization")
    auth.check_project(principal.project_id, project_id, request.headers.get("x-project-id"))
    return principal


Principal = Annotated[auth.Principal, Depends(authenticate)]

# Path parameters that name a thing: one whose name cannot be stored cannot exist either.
_KIND_OF_PATH_PARAM = {"task_id": "task", "instance_id": "instance", "job_id": "job"}


async def storable_parameters(request: Request, _who: Principal) -> None:
    """Path and query parameters a database can take (fields.unstorable), checked after the
    signature on every API route: what SQLite answers, PostgreSQL answers too (not a 500)."""
    for name, value in request.path_params.items():
        why = unstorable(value)
        if why and name in _KIND_OF_PATH_PARAM:
            raise NotFoundError(_KIND_OF_PATH_PARAM[name], value)
        if why:
            raise InvalidParameterError(name, why)
    for name, value in request.query_params.multi_items():
        why = unstorable(value)
        if why:
            raise InvalidParameterError(name, why)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "DCS.4133 unknown task, DCS.4957 wrong state, DCS.4063 invalid "
        "parameter or unreachable endpoint, DCS.4080 password or ACL user refused, DCS.4087 "
        "backup record unknown or not succeed, DCS.4039 quota used up, DCS.4004/4005 empty or "
        "malformed body, DCS.4002 bad project ID",
    },
    401: {"model": ErrorBody, "description": "APIG.0301: signature, token, clock skew or a revoked AK"},
    403: {
        "model": ErrorBody,
        "description": "DCS.1004: the credentials belong to another project; DCS.2007: an "
        "X-Auth-Token asked for a token (only AK/SK-signed requests get one)",
    },
    404: {"model": ErrorBody, "description": "DCS.3022 unknown instance, DCS.4001 unknown URL"},
    413: {"model": ErrorBody, "description": "APIG.0201: the request body is over max_body_bytes"},
    500: {"model": ErrorBody, "description": "DCS.5000: internal error"},
}
Offset = Annotated[int, Query(ge=0, le=2**31, description="Record offset (not a page number)")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Records per page, 1-1000")]
