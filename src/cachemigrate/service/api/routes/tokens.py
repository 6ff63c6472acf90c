"""POST /v2/{project_id}/auth/tokens: an X-Auth-Token for curl users (spec §3.7).

Only an AK/SK-signed request gets one: a token cannot mint its successor, so a leaked token dies
with its expiry (or at once, when its AK is revoked)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from cachemigrate.errors import ForbiddenError
from cachemigrate.service import auth
from cachemigrate.service.api import token_schema as s
from cachemigrate.service.api.deps import ERROR_RESPONSES, Principal, ServicesDep

router = APIRouter(prefix="/v2/{project_id}", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/auth/tokens", response_model=s.TokenResponse)
async def create_token(who: Principal, svc: ServicesDep) -> s.TokenResponse:
    if who.via != "aksk":
        raise ForbiddenError("An X-Auth-Token cannot issue tokens: sign the request with the AK/SK.")
    token, expires = auth.issue_token(
        svc.cipher, project_id=who.project_id, access_key=who.access_key, ttl=svc.settings.token_ttl_seconds
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires))
    return s.TokenResponse(token=token, expires_at=stamp)
