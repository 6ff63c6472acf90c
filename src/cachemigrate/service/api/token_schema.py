"""The X-Auth-Token answered to an AK/SK-signed request (spec §3.7)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cachemigrate.service.api.fields import Out


class TokenResponse(Out):
    token: Annotated[str, Field(repr=False)]  # a bearer credential: out of repr()
    expires_at: str
