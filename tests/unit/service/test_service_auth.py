"""SDK-HMAC-SHA256 verification against the vectors of spec §3.2/§3.3, and X-Auth-Tokens."""

from __future__ import annotations

import hashlib
import json
import time
from calendar import timegm

import pytest
from cryptography.fernet import Fernet

from cachemigrate.errors import CacheMigrateError, CredentialsError, ProjectIdError, ScopeError
from cachemigrate.service import auth
from cachemigrate.service.api.errors import DcsError, dcs_error
from cachemigrate.service.crypto import Cipher

AK, SK = "TESTAK0000000000", "TESTSECRETKEY0123456789"
PID = "0123456789abcdef0123456789abcdef"
DATE = "20240102T030405Z"
NOW = float(timegm(time.strptime(DATE, "%Y%m%dT%H%M%SZ")))
SIGNED = ["content-type", "host", "user-agent", "x-project-id", "x-sdk-date"]


def headers(content_type: str = "application/json") -> list[tuple[str, str]]:
    return [
        ("Content-Type", content_type),
        ("Host", "127.0.0.1:8080"),
        ("User-Agent", "huaweicloud-usdk-python/3.0; test-agent"),
        ("X-Project-Id", PID),
        ("X-Sdk-Date", DATE),
    ]


VECTOR1 = auth.SignedRequest(
    "GET", f"/v2/{PID}/migration-tasks", "limit=10&name=my%20task%2F%C3%BC&offset=0", headers(), b""
)
VECTOR1_SIG = "155d7130addb122a9525d1b9dff3a142cd60d8e46f28507eba29fb8a657261f2"
VECTOR2_BODY = json.dumps({"migration_tasks": ["t1", "t2"]}).encode()
VECTOR2 = auth.SignedRequest(
    "POST",
    f"/v2/{PID}/migration-task/batch-stop",
    "",
    headers("application/json;charset=utf-8"),
    VECTOR2_BODY,
)
VECTOR2_SIG = "eba03452b05008d9c65fcc3f0d66e2e2de4528110aa36e6b327ca6d59ea68e70"


def authorization(sig: str) -> str:
    return f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(SIGNED)}, Signature={sig}"


def test_vendor_vector_step5() -> None:
    sts = (
        "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    )
    assert auth.signature("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc", sts) == (
        "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


def test_vector1_canonical_request_and_signature() -> None:
    canonical = auth.canonical_request(VECTOR1, SIGNED)
    assert canonical == "\n".join(
        [
            "GET",
            f"/v2/{PID}/migration-tasks/",
            "limit=10&name=my%20task%2F%C3%BC&offset=0",
            "content-type:application/json\nhost:127.0.0.1:8080\n"
            "user-agent:huaweicloud-usdk-python/3.0; test-agent\n"
            f"x-project-id:{PID}\nx-sdk-date:{DATE}\n",
            ";".join(SIGNED),
            auth.EMPTY_SHA256,
        ]
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "45ff7a734caa4665967ef1fdd124ad8e302a77b5eaeda06eb3797bd182ff5f4d"
    )
    assert auth.sign(VECTOR1, access_key=AK, secret_key=SK, signed=SIGNED) == authorization(VECTOR1_SIG)
    assert (
        auth.verify_signature(
            VECTOR1, authorization(VECTOR1_SIG), secret_for=lambda ak: SK, skew_seconds=900, now=NOW
        )
        == AK
    )


def test_vector2_body_hash_and_signature() -> None:
    assert hashlib.sha256(VECTOR2_BODY).hexdigest() == (
        "f4cc8798e3646156b6b44d36ba9c5754cff1ad754556571b3451c0f5c374734d"
    )
    assert auth.sign(VECTOR2, access_key=AK, secret_key=SK, signed=SIGNED) == authorization(VECTOR2_SIG)
    auth.verify_signature(
        VECTOR2, authorization(VECTOR2_SIG), secret_for=lambda ak: SK, skew_seconds=900, now=NOW
    )


def test_canonical_uri_decodes_before_splitting() -> None:
    assert auth.canonical_uri("/a%20b%2Fc") == "/a%20b/c/"
    assert auth.canonical_query("b=2&a=1&a=0&sp=x%20y") == "a=0&a=1&b=2&sp=x%20y"
    assert auth.canonical_query("") == ""


def wire(exc: CacheMigrateError) -> DcsError:
    """What the HTTP edge answers for a domain error."""
    err = dcs_error(exc)
    assert err is not None, exc
    return err


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda r: auth.SignedRequest(r.method, r.raw_path, r.raw_query, r.headers, b"{}"), "signature"),
        (
            lambda r: auth.SignedRequest(r.method, r.raw_path + "x", r.raw_query, r.headers, r.body),
            "signature",
        ),
        (lambda r: auth.SignedRequest(r.method, r.raw_path, "limit=11", r.headers, r.body), "signature"),
        (
            lambda r: auth.SignedRequest(
                r.method, r.raw_path, r.raw_query, r.headers[:-2] + r.headers[-1:], r.body
            ),
            "missing",
        ),
    ],
)
def test_tampered_requests_fail(mutate, why) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CredentialsError) as exc:
        auth.verify_signature(
            mutate(VECTOR1), authorization(VECTOR1_SIG), secret_for=lambda ak: SK, skew_seconds=900, now=NOW
        )
    assert (wire(exc.value).status, wire(exc.value).code) == (401, "APIG.0301")
    assert why in wire(exc.value).message


def test_wrong_key_unknown_key_skew_and_malformed() -> None:
    good = authorization(VECTOR1_SIG)
    for secret_for, now, header, why in [
        (lambda ak: "other", NOW, good, "verify aksk signature fail"),
        (lambda ak: None, NOW, good, "verify aksk signature fail"),
        (lambda ak: SK, NOW + 16 * 60, good, "signature expired"),
        (lambda ak: SK, NOW - 16 * 60, good, "signature expired"),
        (lambda ak: SK, NOW, good.replace("SDK-HMAC-SHA256", "SDK-ECDSA-P256-SHA256"), "malformed"),
        (lambda ak: SK, NOW, good.replace("host;", ""), "include host"),
    ]:
        with pytest.raises(CredentialsError) as exc:
            auth.verify_signature(VECTOR1, header, secret_for=secret_for, skew_seconds=900, now=now)
        assert wire(exc.value).code == "APIG.0301" and why in wire(exc.value).message
    # 14 minutes of skew is accepted.
    auth.verify_signature(VECTOR1, good, secret_for=lambda ak: SK, skew_seconds=900, now=NOW + 14 * 60)


def test_project_scope() -> None:
    auth.check_project(PID, PID, PID)
    auth.check_project(PID, PID, None)
    with pytest.raises(ProjectIdError) as exc:
        auth.check_project(PID, PID, "other")
    assert (wire(exc.value).status, wire(exc.value).code) == (400, "DCS.4002")
    with pytest.raises(ScopeError) as scope:
        auth.check_project("other", PID, PID)
    assert (wire(scope.value).status, wire(scope.value).code) == (403, "DCS.1004")
    with pytest.raises(ProjectIdError) as exc:
        auth.check_project_format("{project_id}")
    assert wire(exc.value).code == "DCS.4002"


def test_tokens() -> None:
    cipher = Cipher(Fernet.generate_key())
    token, expires = auth.issue_token(cipher, project_id=PID, access_key=AK, ttl=60)
    principal = auth.verify_token(cipher, token)
    assert (principal.project_id, principal.access_key, principal.via) == (PID, AK, "token")
    with pytest.raises(CredentialsError, match="token expires"):
        auth.verify_token(cipher, token, now=expires + 1)
    with pytest.raises(CredentialsError, match="decrypt token fail"):
        auth.verify_token(Cipher(Fernet.generate_key()), token)
    with pytest.raises(CredentialsError, match="decrypt token fail"):
        auth.verify_token(cipher, "garbage")
    with pytest.raises(CredentialsError, match="decrypt token fail"):  # an encrypted secret is not a token
        auth.verify_token(cipher, cipher.issue({"project_id": PID}))


def test_new_access_keys_are_unique() -> None:
    pairs = {auth.new_access_key() for _ in range(20)}
    assert len(pairs) == 20 and all(len(ak) == 20 and len(sk) == 40 for ak, sk in pairs)
