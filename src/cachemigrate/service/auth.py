"""Request authentication: SDK-HMAC-SHA256 exactly as the Huawei Cloud SDK signs (spec §3), or a
service-issued X-Auth-Token (§3.7); and the project scope every request is bound to."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from calendar import timegm
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote

from cachemigrate.errors import CredentialsError, ProjectIdError, ScopeError
from cachemigrate.service.crypto import Cipher

ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_AUTH_RE = re.compile(
    r"^(SDK-HMAC-SHA256|SDK-HMAC-SM3) Access=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$"
)
# Algorithm -> (hashlib name, header that marks an unsigned payload). SM3 needs OpenSSL's sm3.
HASHES = {"SDK-HMAC-SHA256": ("sha256", "x-sdk-content-sha256"), "SDK-HMAC-SM3": ("sm3", "x-sdk-content-sm3")}
_PROJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")

SecretLookup = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True)
class Principal:
    project_id: str
    access_key: str
    via: str  # "aksk" | "token"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    raw_path: str
    raw_query: str
    # Out of repr(): the headers carry Authorization or X-Auth-Token, the body Redis passwords.
    headers: Sequence[tuple[str, str]] = field(repr=False)
    body: bytes = field(repr=False)


def canonical_uri(raw_path: str) -> str:
    curi = "/".join(quote(seg, safe="~") for seg in unquote(raw_path).split("/"))
    return curi if curi.endswith("/") else curi + "/"


def canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def canonical_request(req: SignedRequest, signed: Sequence[str], algorithm: str = ALGORITHM) -> str:
    """The six-part canonical request of §3.2; KeyError when a signed header is missing."""
    hash_name, unsigned_header = HASHES[algorithm]
    low = {name.lower(): value.strip() for name, value in req.headers}
    headers = "".join(f"{h}:{low[h]}\n" for h in signed)
    unsigned = req.body and low.get(unsigned_header) == "UNSIGNED-PAYLOAD"
    payload = "UNSIGNED-PAYLOAD" if unsigned else hashlib.new(hash_name, req.body).hexdigest()
    parts = [
        req.method.upper(),
        canonical_uri(req.raw_path),
        canonical_query(req.raw_query),
        headers,
        ";".join(signed),
        payload,
    ]
    return "\n".join(parts)


def string_to_sign(sdk_date: str, canonical: str, algorithm: str = ALGORITHM) -> str:
    digest = hashlib.new(HASHES[algorithm][0], canonical.encode()).hexdigest()
    return f"{algorithm}\n{sdk_date}\n{digest}"


def signature(secret_key: str, sts: str, algorithm: str = ALGORITHM) -> str:
    return hmac.new(secret_key.encode(), sts.encode(), HASHES[algorithm][0]).hexdigest()


def sign(req: SignedRequest, *, access_key: str, secret_key: str, signed: Sequence[str]) -> str:
    """The Authorization header value for ``req`` (used by tests and the CLI client)."""
    low = {name.lower(): value for name, value in req.headers}
    sts = string_to_sign(low["x-sdk-date"], canonical_request(req, signed))
    sig = signature(secret_key, sts)
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={sig}"


def parse_sdk_date(value: str) -> float | None:
    if not _DATE_RE.match(value):
        return None
    try:
        return float(timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def check_project_format(project_id: str) -> None:
    if not _PROJECT_RE.match(project_id):
        raise ProjectIdError("The project ID has an invalid format.")


def check_project(principal_project: str, path_project: str, header_project: str | None) -> None:
    if header_project is not None and header_project != path_project:
        raise ProjectIdError("X-Project-Id does not match the project ID in the path.")
    if principal_project != path_project:
        raise ScopeError("The project does not match the credentials of the request.")


def access_key_of(authorization: str) -> str | None:
    m = _AUTH_RE.match(authorization.strip())
    return None if m is None else m.group(2)


def verify_signature(
    req: SignedRequest,
    authorization: str,
    *,
    secret_for: SecretLookup,
    skew_seconds: int,
    now: float | None = None,
) -> str:
    """Check an SDK-HMAC-SHA256 (or -SM3) Authorization header: the access key, or CredentialsError."""
    m = _AUTH_RE.match(authorization.strip())
    if m is None:
        raise CredentialsError("unsupported or malformed Authorization header")
    algorithm, access_key, signed_list, sig = m.groups()
    signed = signed_list.split(";")
    if "x-sdk-date" not in signed or "host" not in signed or signed != sorted(set(signed)):
        raise CredentialsError("SignedHeaders must be sorted and include host and x-sdk-date")
    low = {name.lower(): value.strip() for name, value in req.headers}
    stamp = parse_sdk_date(low.get("x-sdk-date", ""))
    if stamp is None:
        raise CredentialsError("invalid X-Sdk-Date")
    if abs((time.time() if now is None else now) - stamp) > skew_seconds:
        raise CredentialsError("calc ak sk signature fail:signature expired")
    secret = secret_for(access_key)
    if secret is None:
        raise CredentialsError("verify aksk signature fail")
    try:
        canonical = canonical_request(req, signed, algorithm)
    except KeyError:
        raise CredentialsError("a signed header is missing") from None
    except ValueError:  # no SM3 in this OpenSSL
        raise CredentialsError(f"{algorithm} is not supported by this server") from None
    expected = signature(secret, string_to_sign(low["x-sdk-date"], canonical, algorithm), algorithm)
    if not hmac.compare_digest(expected, sig):
        raise CredentialsError("verify aksk signature fail")
    return access_key


def issue_token(cipher: Cipher, *, project_id: str, access_key: str, ttl: int) -> tuple[str, float]:
    expires = time.time() + ttl
    claims = {"project_id": project_id, "access_key": access_key, "exp": expires, "kind": "token"}
    return cipher.issue(claims), expires


def verify_token(cipher: Cipher, token: str, *, now: float | None = None) -> Principal:
    claims = cipher.open(token)
    if claims is None or claims.get("kind") != "token":
        raise CredentialsError("decrypt token fail")
    expires = float(claims.get("exp", 0))
    if (time.time() if now is None else now) > expires:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        raise CredentialsError(f"token expires, expires_at: {stamp}")
    return Principal(str(claims["project_id"]), str(claims["access_key"]), "token")


def new_access_key() -> tuple[str, str]:
    """A fresh (AK, SK) pair: 20 upper-case alphanumerics and 40 characters, like the cloud's."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    ak = "".join(secrets.choice(alphabet) for _ in range(20))
    sk = secrets.token_urlsafe(30)[:40]
    return ak, sk
