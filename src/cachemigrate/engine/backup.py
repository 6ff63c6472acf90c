"""Backups of a live server: its RDB, fetched over the replication protocol, streamed into a sink.

No access to the server's disk is needed. ``fetch_rdb`` connects like a replica, asks for the
RDB only (``REPLCONF rdb-only 1``, Redis >= 7.0: the master drops the link once the RDB is sent
and keeps no replica state) and falls back to a plain ``PSYNC ? -1`` on older servers, whose
command stream after the RDB is simply not read. Chunks go to the sink as they arrive: nothing is
held whole in memory. Sinks: ``FileSink`` (a local file, written under a temporary name and
renamed when complete) and ``S3Sink`` (an S3 multipart upload, aborted on failure).
``remove_rdb`` deletes what either of them wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from cachemigrate.engine.private_files import create_private, private_dir
from cachemigrate.engine.s3_objects import parse_s3_url, s3_client, s3_error
from cachemigrate.engine.spec import S3Settings
from cachemigrate.errors import CacheMigrateError, MigrationError, ProtocolError
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import ReplicationLink

__all__ = ["BackupResult", "FileSink", "RdbSink", "S3Sink", "fetch_rdb", "remove_rdb"]

_PART = 8 << 20  # S3 multipart part size (the minimum is 5 MiB except for the last part)


class RdbSink(Protocol):
    """Where the RDB bytes go: ``write`` each chunk in order, then ``finish`` or ``abort``."""

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> None: ...

    async def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BackupResult:
    size: int  # RDB bytes written to the sink
    rdb_only: bool  # True: REPLCONF rdb-only was accepted (Redis >= 7.0)


async def fetch_rdb(
    endpoint: Endpoint,
    sink: RdbSink,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> BackupResult:
    """Stream one RDB snapshot of ``endpoint`` into ``sink``; the sink is aborted on any failure.

    ``progress(received, announced size or None)`` is called after each chunk.
    """
    link = ReplicationLink(endpoint, repl_timeout=timeout)
    size = 0
    try:
        await link.connect()
        rdb_only = await link.replconf(b"rdb-only", b"1")
        result = await link.psync(None, -1)
        if not result.full:
            raise ProtocolError(f"{endpoint.address}: PSYNC did not start a full synchronization")
        async for chunk in link.rdb():
            await sink.write(chunk)
            size += len(chunk)
            if progress is not None:
                progress(size, link.rdb_size)
        await sink.finish()
    except BaseException:
        with contextlib.suppress(Exception):
            await sink.abort()
        raise
    finally:
        link.abort()
        await link.close()
    return BackupResult(size=size, rdb_only=rdb_only)


class FileSink:
    """A local file: written as ``<path>.part`` and renamed to ``path`` once complete; the file is
    0600 and the directories it creates 0700 (a backup is the server's data: engine.private_files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self._fh: BinaryIO | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _open(self) -> BinaryIO:
        private_dir(self.path.parent)
        return os.fdopen(create_private(self.partial), "wb")

    async def write(self, data: bytes) -> None:
        try:
            if self._fh is None:
                self._fh = await self._run(self._open)
            await self._run(self._fh.write, data)
        except OSError as exc:
            raise MigrationError(f"{self.path}: cannot write the backup: {exc.strerror or exc}") from exc

    async def finish(self) -> None:
        try:
            if self._fh is None:
                self._fh = await self._run(self._open)
            fh, self._fh = self._fh, None
            await self._run(fh.close)
            await self._run(os.replace, self.partial, self.path)
        except OSError as exc:
            raise MigrationError(f"{self.path}: cannot write the backup: {exc.strerror or exc}") from exc

    async def abort(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            await self._run(fh.close)
        with contextlib.suppress(OSError):
            await self._run(self.partial.unlink)


class S3Sink:
    """One S3 object: a multipart upload of ``_PART``-byte parts (a small RDB is one PUT)."""

    def __init__(self, settings: S3Settings, bucket: str, key: str, *, part_size: int = _PART) -> None:
        self.settings = settings
        self.bucket = bucket
        self.key = key
        self.url = f"s3://{bucket}/{key}"
        self.part_size = max(part_size, 5 << 20)
        self._client: Any = None
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    async def _call(self, method: str, **kw: Any) -> Any:
        def work() -> Any:
            if self._client is None:
                self._client = s3_client(self.settings)
            return getattr(self._client, method)(**kw)

        try:
            return await asyncio.get_running_loop().run_in_executor(None, work)
        except CacheMigrateError:
            raise
        except Exception as exc:
            raise s3_error(self.url, exc) from exc

    async def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= self.part_size:
            part = bytes(self._buf[: self.part_size])
            del self._buf[: self.part_size]
            await self._upload(part)

    async def _upload(self, part: bytes) -> None:
        if self._upload_id is None:
            resp = await self._call("create_multipart_upload", Bucket=self.bucket, Key=self.key)
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        resp = await self._call(
            "upload_part", Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
            PartNumber=number, Body=part,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    async def finish(self) -> None:
        if self._upload_id is None:
            await self._call("put_object", Bucket=self.bucket, Key=self.key, Body=bytes(self._buf))
            self._buf.clear()
            return
        if self._buf:
            await self._upload(bytes(self._buf))
            self._buf.clear()
        await self._call(
            "complete_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    async def abort(self) -> None:
        self._buf.clear()
        if self._upload_id is not None:
            upload, self._upload_id = self._upload_id, None
            with contextlib.suppress(CacheMigrateError):
                await self._call("abort_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=upload)


async def remove_rdb(location: str, s3: S3Settings | None = None) -> None:
    """Delete the backup a sink wrote at ``location`` (a path, or an s3:// URL reached with ``s3``).

    Already gone is fine (so is a leftover ``.part`` of a local file, removed too); any other
    failure is a MigrationError or the S3 error naming the object, and nothing is deleted.
    """
    loop = asyncio.get_running_loop()
    if location.startswith("s3://"):
        bucket, key = parse_s3_url(location)

        def delete_object() -> None:  # S3 answers a missing key with success
            s3_client(s3 or S3Settings()).delete_object(Bucket=bucket, Key=key)

        try:
            await loop.run_in_executor(None, delete_object)
        except CacheMigrateError:
            raise
        except Exception as exc:
            raise s3_error(location, exc) from exc
        return
    path = Path(location)

    def unlink() -> None:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".part").unlink(missing_ok=True)

    try:
        await loop.run_in_executor(None, unlink)
    except OSError as exc:
        raise MigrationError(f"{path}: cannot delete the backup: {exc.strerror or exc}") from exc
