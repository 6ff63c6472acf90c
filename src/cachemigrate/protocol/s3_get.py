"""GET of one S3 object with AWS Signature Version 4, on ``http.client``: the import's read path.

boto3's import and client set-up cost about 0.9 s of CPU per process before the first byte
(botocore loads and parses its service models); a backup import only needs to stream one object
(and to start again from an offset after a dropped connection), which is one signed GET. The
signing follows AWS's "Signature Version 4 signing process" for S3 (unsigned payload, path-style
or virtual-hosted addressing). Errors come back as ``S3GetError`` with the HTTP status and S3's
error code, for the caller to word.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,300})</Message>")
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class S3GetError(Exception):
    """S3 answered with an error status (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_v4(
    method: str, host: str, path: str, region: str, creds: S3Credentials, when: time.struct_time
) -> dict[str, str]:
    """The headers that sign a request without a body (``path`` already URI-encoded)."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", when)
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": amz_date}
    if creds.session_token:
        headers["x-amz-security-token"] = creds.session_token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [method, path, "", *(f"{n}:{headers[n].strip()}" for n in names), "", signed, _EMPTY_SHA256]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{creds.secret_access_key}".encode(), day), region), "s3"),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


class S3Getter:
    """Signed GETs of objects of one endpoint (default: AWS's regional endpoint)."""

    def __init__(
        self,
        creds: S3Credentials,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        timeout: float = 120.0,
    ) -> None:
        self.creds = creds
        self.region = region or "us-east-1"
        url = urlsplit(endpoint_url or f"https://s3.{self.region}.amazonaws.com")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"bad S3 endpoint URL {endpoint_url!r}")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port
        self.base_path = url.path.rstrip("/")
        # A custom endpoint (MinIO, Ceph, moto, OBS) is addressed path-style, as boto3 does for it
        # unless told otherwise; AWS itself virtual-hosted when the bucket name allows.
        self.path_style = path_style or endpoint_url is not None
        self.timeout = timeout

    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        path_key = quote(key, safe="/~")
        if self.path_style or not _DNS_BUCKET.match(bucket):
            return netloc, f"{self.base_path}/{quote(bucket, safe='')}/{path_key}"
        return f"{bucket}.{netloc}", f"{self.base_path}/{path_key}"

    def get(self, bucket: str, key: str, start: int = 0) -> tuple[http.client.HTTPResponse, int]:
        """The open response (body not read) from byte ``start``, and the object's full size."""
        host, path = self._target(bucket, key)
        headers = sign_v4("GET", host, path, self.region, self.creds, time.gmtime())
        if start:
            headers["range"] = f"bytes={start}-"
        # Always the endpoint's address; a virtual-hosted bucket is named by the Host header.
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise S3GetError(0, "Unreachable", str(exc) or type(exc).__name__) from None
        if resp.status not in (200, 206):
            body = resp.read(64 << 10)
            conn.close()
            code = _CODE.search(body)
            msg = _MESSAGE.search(body)
            raise S3GetError(
                resp.status,
                code.group(1).decode(errors="replace") if code else str(resp.status),
                msg.group(1).decode(errors="replace") if msg else resp.reason,
            )
        size = int(resp.getheader("content-length") or 0)
        if resp.status == 206:
            total = (resp.getheader("content-range") or "").rpartition("/")[2]
            size = int(total) if total.isdigit() else start + size
        return resp, size
