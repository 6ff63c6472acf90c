"""S3 objects as streams: settings, our own signed GET (no boto3), boto3 for the rest.

- ``S3GetStream``: a plain object read as it comes by ``protocol/s3_get`` (explicit or environment
  keys): no boto3 import or client set-up in the import's start-up.
- ``S3Stream``: the same through boto3's ``get_object()['Body']`` (profiles, instance roles).
- ``S3RangeFile``: a seekable file over ranged GETs with one cached block (``.zip`` needs it).
A dropped connection resumes with a ranged GET from where the reader got to.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from cachemigrate.errors import CacheMigrateError, ConfigError, MigrationError

if TYPE_CHECKING:
    from cachemigrate.protocol.s3_get import S3GetError, S3Getter

Source = tuple[BinaryIO, int | None, str]
_RANGE_BLOCK = 8 << 20


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How to reach an S3-compatible store. Unset fields fall back to boto3's own lookup."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    path_style: bool = False  # bucket in the path (MinIO, most S3-compatible stores)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        e = os.environ if env is None else env
        return cls(
            endpoint_url=e.get("CACHEMIGRATE_S3_ENDPOINT_URL") or e.get("AWS_ENDPOINT_URL_S3")
            or e.get("AWS_ENDPOINT_URL") or None,
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or None,
            access_key_id=e.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=e.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=e.get("AWS_SESSION_TOKEN") or None,
            path_style=e.get("CACHEMIGRATE_S3_PATH_STYLE", "").lower() in ("1", "true", "yes"),
        )

    def getter(self) -> S3Getter | None:
        """Our own signed GET (no boto3) when the keys are given here or in the environment;
        None: boto3's lookup (profiles, instance roles) is needed. CACHEMIGRATE_S3_BOTO3=1 forces
        boto3."""
        if not (self.access_key_id and self.secret_access_key) or os.environ.get("CACHEMIGRATE_S3_BOTO3"):
            return None
        from cachemigrate.protocol.s3_get import S3Credentials, S3Getter

        creds = S3Credentials(self.access_key_id, self.secret_access_key, self.session_token)
        return S3Getter(creds, endpoint_url=self.endpoint_url, region=self.region, path_style=self.path_style)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path" if self.path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            read_timeout=120,
        )
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token, config=config,
        )


def parse_s3_url(url: str) -> tuple[str, str]:
    rest = url[5:] if url.startswith("s3://") else ""
    bucket, _, key = rest.partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigError(f"{url}: expected s3://bucket/key of one object")
    return bucket, key


def _s3_error(url: str, exc: Exception) -> Exception:
    """A ConfigError (missing, denied) or MigrationError (unreachable) that names the object."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        msg = str(err.get("Message", "")) or code
        if code in ("NoSuchKey", "404", "NotFound"):
            return ConfigError(f"{url}: no such object in the bucket")
        if code == "NoSuchBucket":
            return ConfigError(f"{url}: no such bucket")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                    "ExpiredToken", "InvalidToken", "Forbidden"):
            return ConfigError(f"{url}: access denied ({code}: {msg}); check the S3 credentials")
        return MigrationError(f"{url}: S3 error {code}: {msg}")
    if isinstance(exc, NoCredentialsError):
        return ConfigError(f"{url}: no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, BotoCoreError):
        return MigrationError(f"{url}: cannot read from S3: {exc}")
    return exc


class S3RangeFile(io.RawIOBase):
    """A read-only seekable file over one S3 object: ranged GETs of ``block`` bytes, one cached."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, *, block: int = _RANGE_BLOCK) -> None:
        super().__init__()
        self.name = f"s3://{bucket}/{key}"
        self._client, self._bucket, self._key = client, bucket, key
        self.size = size
        self._block = max(block, 1)
        self._pos = 0
        self._cache_at = 0
        self._cache = b""
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes, short only at the end (zipfile reads headers in one call)."""
        want = max(0, self.size - self._pos) if size is None or size < 0 else size
        buf = bytearray(want)
        view = memoryview(buf)
        got = 0
        while got < want:
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        return bytes(view[:got])

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        rel = self._pos - self._cache_at
        if not 0 <= rel < len(self._cache):
            self._fetch(self._pos - self._pos % self._block)  # aligned: a zip's tail is one block
            rel = self._pos - self._cache_at
        n = min(len(view), len(self._cache) - rel)
        view[:n] = self._cache[rel : rel + n]
        self._pos += n
        return n

    def _fetch(self, at: int) -> None:
        end = min(self.size, at + self._block) - 1
        try:
            resp = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={at}-{end}")
            data = resp["Body"].read()
        except Exception as exc:
            raise _s3_error(self.name, exc) from exc
        self.requests += 1
        self._cache_at, self._cache = at, data


class S3Stream(io.RawIOBase):
    """``get_object()['Body']`` read as it comes; a dropped connection resumes with a ranged GET."""

    def __init__(self, client: Any, bucket: str, key: str, *, retries: int = 3) -> None:
        super().__init__()
        self.name = f"s3://{bucket}/{key}"
        self._client, self._bucket, self._key = client, bucket, key
        self._retries = retries
        self._pos = 0
        self.size: int | None = None
        self.resumed = 0
        self._body = self._get()

    def _get(self) -> Any:
        extra = {"Range": f"bytes={self._pos}-"} if self._pos else {}
        try:
            resp = self._client.get_object(Bucket=self._bucket, Key=self._key, **extra)
        except Exception as exc:
            raise _s3_error(self.name, exc) from exc
        if self.size is None:
            self.size = int(resp.get("ContentLength") or 0)
        return resp["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self.size is not None and self._pos >= self.size:
            return 0
        for attempt in range(self._retries + 1):
            try:
                data = self._body.read(len(view))
                break
            except Exception as exc:
                if attempt == self._retries:
                    raise _s3_error(self.name, exc) from exc
                self.resumed += 1
                self._body = self._get()
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3GetStream(io.RawIOBase):
    """An S3 object streamed by our own signed GET (``protocol/s3_get``), without boto3: the
    common case of a plain import with explicit or environment credentials. Reads go straight
    into the caller's buffer; a dropped connection resumes with a ranged GET."""

    def __init__(self, getter: S3Getter, bucket: str, key: str, *, retries: int = 3) -> None:
        super().__init__()
        self.name = f"s3://{bucket}/{key}"
        self._getter, self._bucket, self._key = getter, bucket, key
        self._retries = retries
        self._pos = 0
        self.resumed = 0
        self._resp, self.size = self._get()

    def _get(self) -> tuple[Any, int]:
        from cachemigrate.protocol.s3_get import S3GetError

        try:
            return self._getter.get(self._bucket, self._key, self._pos)
        except S3GetError as exc:
            raise _get_error(self.name, exc) from None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._pos >= self.size:
            return 0
        for attempt in range(self._retries + 1):
            try:
                n = int(self._resp.readinto(b))
                if n:
                    break
                raise OSError("the connection closed before the end of the object")
            except (OSError, ValueError, http_client_errors()) as exc:
                if attempt == self._retries:
                    raise MigrationError(f"{self.name}: cannot read from S3: {exc}") from exc
                self.resumed += 1
                self._resp.close()
                self._resp, _ = self._get()
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


def http_client_errors() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def _get_error(url: str, exc: S3GetError) -> CacheMigrateError:
    """``_s3_error``'s wording for our own GET's errors."""
    code, msg = exc.code, exc.message or exc.code
    if exc.status == 0:
        return MigrationError(f"{url}: cannot read from S3: {msg}")
    if code in ("NoSuchKey", "404", "NotFound"):
        return ConfigError(f"{url}: no such object in the bucket")
    if code == "NoSuchBucket":
        return ConfigError(f"{url}: no such bucket")
    if exc.status == 403 or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                                     "ExpiredToken", "InvalidToken", "Forbidden"):
        return ConfigError(f"{url}: access denied ({code}: {msg}); check the S3 credentials")
    return MigrationError(f"{url}: S3 error {code}: {msg}")


def open_s3(url: str, settings: S3Settings, clients: list[Any], *, seekable: bool) -> Source:
    """One object as a source; ``clients`` caches the boto3 client (made on first need)."""
    getter = None if seekable else settings.getter()
    if getter is not None:
        fast = S3GetStream(getter, *parse_s3_url(url))
        return cast(BinaryIO, io.BufferedReader(fast, 1 << 20)), fast.size or None, url
    if not clients:
        clients.append(settings.client())
    client = clients[0]
    bucket, key = parse_s3_url(url)
    if not seekable:
        stream = S3Stream(client, bucket, key)
        return cast(BinaryIO, io.BufferedReader(stream, 1 << 20)), stream.size or None, url
    try:
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except Exception as exc:
        raise _s3_error(url, exc) from exc
    return cast(BinaryIO, S3RangeFile(client, bucket, key, size)), size, url
