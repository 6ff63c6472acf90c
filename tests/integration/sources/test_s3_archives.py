"""Backups from an S3 bucket (a real moto server) and from zip / tar.gz archives, into a real target."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sources_support import GENERATED, compare_servers, import_paths

from cachemigrate.engine.s3_objects import s3_client
from cachemigrate.engine.sources import BucketFiles
from cachemigrate.engine.spec import S3Settings
from cachemigrate.errors import ConfigError
from support.servers import ROOT, RedisServer, free_port, native_aof

PREAMBLE = GENERATED / "redis-6.0.9-single-aof-rdbpreamble"  # its dump.rdb holds what its AOF does
MULTIPART = GENERATED / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir"
BUCKET = "backups"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[S3Settings, Any]]:
    """A moto S3 server with IAM auth on: (settings with a valid key, client with that key)."""
    port = free_port()
    # The first three requests (IAM user, policy, key) are let through; every later one is checked.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "moto_server"), "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="boot", aws_secret_access_key="boot")
        iam.create_user(UserName="importer")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="importer", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="importer")["AccessKey"]
        settings = S3Settings(endpoint_url=url, region="us-east-1", access_key_id=key["AccessKeyId"],
                              secret_access_key=key["SecretAccessKey"], path_style=True)
        client = s3_client(settings)
        client.create_bucket(Bucket=BUCKET)
        yield settings, client
    finally:
        proc.terminate()
        proc.wait(10)


def _native_rdb(factory: Callable[..., RedisServer], tmp: Path, rdb: Path) -> RedisServer:
    (tmp / "native").mkdir()
    shutil.copy(rdb, tmp / "native" / "dump.rdb")
    return factory("native")


def _archive(tmp: Path, kind: str) -> Path:
    members = [("backup/dump.rdb", PREAMBLE / "dump.rdb"),
               ("backup/appendonly.aof", PREAMBLE / "appendonly.aof")]
    note = b"not a backup\n"
    if kind == "zip":
        path = tmp / "backup.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, src in members:
                zf.write(src, name)
            zf.writestr("backup/README.txt", note)
    else:
        path = tmp / "backup.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            for name, src in members:
                tf.add(src, name)
            info = tarfile.TarInfo("backup/README.txt")
            info.size = len(note)
            tf.addfile(info, io.BytesIO(note))
    return path


async def test_rdb_from_bucket(s3: tuple[S3Settings, Any], redis_factory: Callable[..., RedisServer],
                               tmp_path: Path) -> None:
    settings, client = s3
    rdb = GENERATED / "redis-6.0.9-single-aof-plain" / "dump.rdb"
    client.upload_file(str(rdb), BUCKET, "nightly/dump.rdb")
    native = _native_rdb(redis_factory, tmp_path, rdb)
    target = redis_factory("target")
    done = await import_paths([f"s3://{BUCKET}/nightly/dump.rdb"], target, files=BucketFiles(s3=settings))
    report = await compare_servers(native, target)
    assert report.ok and report.compared == 25, report.summary()
    [src] = done.reader.sources
    assert (src.name, src.size, src.bytes_read, src.keys, src.state) == (
        f"s3://{BUCKET}/nightly/dump.rdb", rdb.stat().st_size, rdb.stat().st_size, 25, "done")
    assert done.reader.progress().bytes_total == rdb.stat().st_size


async def test_multipart_aof_from_bucket(
    s3: tuple[S3Settings, Any], redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    settings, client = s3
    for f in MULTIPART.iterdir():
        client.upload_file(str(f), BUCKET, f"mp/appendonlydir/{f.name}")
    native = native_aof(redis_factory, tmp_path, "native", MULTIPART, multipart=True)
    target = redis_factory("target")
    url = f"s3://{BUCKET}/mp/appendonlydir/appendonly.aof.manifest"
    done = await import_paths([url], target, files=BucketFiles(s3=settings))
    report = await compare_servers(native, target)
    assert report.ok and report.compared == 26, report.summary()
    assert [s.name.rsplit("/", 1)[1] for s in done.reader.sources] == [
        "appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"]


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
async def test_archive_members_are_sources(kind: str, where: str, s3: tuple[S3Settings, Any],
                                           redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    settings, client = s3
    archive = _archive(tmp_path, kind)
    path = str(archive)
    if where == "s3":
        client.upload_file(path, BUCKET, f"archives/{archive.name}")
        path = f"s3://{BUCKET}/archives/{archive.name}"
    # The reference: the same two files imported one after the other straight from disk (each of
    # them alone matches a native load: test_aof_import, test_rdb_from_bucket).
    reference = redis_factory("reference")
    await import_paths([str(PREAMBLE / "dump.rdb"), str(PREAMBLE / "appendonly.aof")], reference)
    target = redis_factory("target")
    done = await import_paths([path], target, files=BucketFiles(s3=settings))
    report = await compare_servers(reference, target)
    assert report.ok and report.compared == 27, report.summary()
    got = [(s.name, s.size, s.bytes_read, s.state) for s in done.reader.sources]
    sizes = {n: (PREAMBLE / n).stat().st_size for n in ("dump.rdb", "appendonly.aof")}
    assert got == [
        (f"{path}!backup/dump.rdb", sizes["dump.rdb"], sizes["dump.rdb"], "done"),
        (f"{path}!backup/appendonly.aof", sizes["appendonly.aof"], sizes["appendonly.aof"], "done"),
        (f"{path}!backup/README.txt", 13, 13, "skipped"),
    ]
    assert done.reader.sources[0].keys == 25 and done.reader.sources[1].commands == 21
    assert any("README.txt: not an RDB or AOF file" in w for w in done.warnings())
    progress = done.reader.progress()
    assert progress.bytes_read == progress.bytes_total == archive.stat().st_size


@pytest.mark.parametrize(
    ("key", "creds", "expected"),
    [
        ("nightly/missing.rdb", {}, "no such object"),
        ("nightly/dump.rdb", {"secret_access_key": "wrong"}, "access denied (SignatureDoesNotMatch"),
        ("nightly/dump.rdb", {"access_key_id": "AKIAUNKNOWN000000000"}, "access denied (InvalidAccessKeyId"),
    ],
    ids=["missing-object", "wrong-secret", "unknown-key"],
)
async def test_bucket_errors_name_the_object(key: str, creds: dict[str, str], expected: str,
                                             s3: tuple[S3Settings, Any],
                                             redis_factory: Callable[..., RedisServer]) -> None:
    settings, client = s3
    client.put_object(Bucket=BUCKET, Key="nightly/dump.rdb", Body=(GENERATED / "redis-6.0.9-single-aof-plain"
                                                                   / "dump.rdb").read_bytes())
    import dataclasses

    bad = dataclasses.replace(settings, **creds)
    target = redis_factory("target")
    with pytest.raises(ConfigError) as err:
        await import_paths([f"s3://{BUCKET}/{key}"], target, files=BucketFiles(s3=bad))
    assert f"s3://{BUCKET}/{key}" in str(err.value) and expected in str(err.value)
    assert target.client().dbsize() == 0


async def test_missing_bucket_and_bad_urls(
    s3: tuple[S3Settings, Any], redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    settings, _ = s3
    target = redis_factory("target")
    files = BucketFiles(s3=settings)
    cases = {
        "s3://no-such-bucket/dump.rdb": "no such bucket",
        "s3://backups/": "expected s3://bucket/key",
        str(tmp_path / "nowhere.aof"): "cannot open",
        str(tmp_path / "backup.7z"): "unsupported archive format",
        "ftp://host/dump.rdb": "unsupported URL scheme",
    }
    for path, expected in cases.items():
        with pytest.raises(ConfigError) as err:
            await import_paths([path], target, files=files)
        assert path.rstrip("/") in str(err.value) and expected in str(err.value), str(err.value)


class _FlakyBody:
    def __init__(self, data: bytes, fail_after: int | None) -> None:
        self.data, self.pos, self.fail_after = data, 0, fail_after

    def read(self, n: int) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        out = self.data[self.pos : self.pos + min(n, 1000)]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


class _FlakyClient:
    """get_object whose first body drops after 2500 bytes; ranged GETs serve the rest."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[str | None] = []

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        self.ranges.append(Range)
        start = int(Range[6:-1]) if Range else 0
        fail = 2500 if not Range else None
        return {"Body": _FlakyBody(self.data[start:], fail), "ContentLength": len(self.data) - start}


def test_s3_stream_resumes_a_dropped_read_with_a_ranged_get() -> None:
    from cachemigrate.engine.sources import S3Stream

    data = bytes(range(256)) * 40
    client = _FlakyClient(data)
    stream = S3Stream(client, BUCKET, "k")
    got = b"".join(iter(lambda: stream.read(700), b""))
    assert got == data and stream.resumed == 1
    assert client.ranges == [None, "bytes=2800-"]  # the read after byte 2500 failed; 4 x 700 were in


async def test_zip_on_s3_is_read_with_few_ranged_gets(s3: tuple[S3Settings, Any], tmp_path: Path) -> None:
    from cachemigrate.engine.sources import S3RangeFile, archive_members

    settings, client = s3
    archive = _archive(tmp_path, "zip")
    client.upload_file(str(archive), BUCKET, "archives/few.zip")
    fh, size, name = BucketFiles(s3=settings).open(f"s3://{BUCKET}/archives/few.zip")
    assert isinstance(fh, S3RangeFile) and size == archive.stat().st_size
    with zipfile.ZipFile(archive) as zf:
        expected = {i.filename: zf.read(i) for i in zf.infolist()}
    got = {m.split("!", 1)[1]: f.read() for f, _, m in archive_members(fh, name, "zip")}
    assert got == expected and fh.requests == 1  # one aligned 8 MB block holds this small archive
    small = S3RangeFile(client, BUCKET, "archives/few.zip", archive.stat().st_size, block=1024)
    got = {m.split("!", 1)[1]: f.read() for f, _, m in archive_members(small, name, "zip")}  # type: ignore[arg-type]
    assert got == expected and small.requests >= archive.stat().st_size // 1024


def test_range_file_reads_aligned_blocks_and_seeks() -> None:
    from cachemigrate.engine.sources import S3RangeFile

    data = bytes(range(256)) * 100
    calls: list[str] = []

    class Client:
        def get_object(self, Bucket: str, Key: str, Range: str) -> dict[str, Any]:
            calls.append(Range)
            lo, hi = (int(x) for x in Range[6:].split("-"))
            return {"Body": io.BytesIO(data[lo : hi + 1])}

    f = S3RangeFile(Client(), BUCKET, "k", len(data), block=4096)
    f.seek(-22, io.SEEK_END)
    assert f.read(22) == data[-22:]
    f.seek(5000)
    assert f.read(10000) == data[5000:15000]
    assert f.tell() == 15000 and f.read() == data[15000:] and f.read(1) == b""
    assert calls[:2] == ["bytes=24576-25599", "bytes=4096-8191"]


@pytest.mark.parametrize("key", ["nightly/dump.rdb", "dir with space/a+b=c,ü~%!'()*.rdb", "a//b/./c.rdb"])
def test_any_key_streams_through_the_one_s3_client(key: str, s3: tuple[S3Settings, Any]) -> None:
    """moto checks SigV4 here (IAM auth on): keys that need encoding, streamed and ranged alike."""
    from cachemigrate.engine.sources import S3RangeFile, S3Stream

    settings, client = s3
    data = os.urandom(3 << 20)
    client.put_object(Bucket=BUCKET, Key=key, Body=data)
    fh, size, _name = BucketFiles(s3=settings).open(f"s3://{BUCKET}/{key}")
    assert isinstance(fh, io.BufferedReader) and isinstance(fh.raw, S3Stream) and size == len(data)
    assert fh.read() == data
    fh.close()
    ranged = S3RangeFile(client, BUCKET, key, len(data), block=1 << 20)
    ranged.seek(-5000, io.SEEK_END)
    assert ranged.read(5000) == data[-5000:] and ranged.requests == 1
