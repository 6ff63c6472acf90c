"""Backup import from an S3 bucket (a real moto server) through the official SDK, into real targets.

Every success is checked key by key against the source (or a redis-server that loaded the same
file itself): no mismatch, no missing key, no extra key.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from cachemigrate.service.settings import BucketConfig
from conftest import PROJECT, LiveService, make_settings, signed, wait_for
from support.compare import cluster_nodes, compare_servers
from support.corpus import CORPUS
from support.servers import ROOT, RedisCluster, RedisServer, free_port, native_aof

GENERATED = CORPUS / "generated-local"
PLAIN = GENERATED / "redis-6.0.9-single-aof-plain" / "appendonly.aof"
PREAMBLE = GENERATED / "redis-6.0.9-single-aof-rdbpreamble" / "appendonly.aof"
MULTIPART = GENERATED / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir"
BUCKET = "dumps"


@dataclass
class S3:
    url: str
    key_id: str
    secret: str
    client: Any

    def bucket(
        self, *, secret: str | None = None, prefix: str = "", projects: tuple[str, ...] = (PROJECT,)
    ) -> BucketConfig:
        return BucketConfig(
            url=f"s3://{BUCKET}/{prefix}".rstrip("/"),
            projects=projects,
            endpoint_url=self.url,
            region="us-east-1",
            access_key_id=self.key_id,
            secret_access_key=secret or self.secret,
            path_style=True,
        )


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto_server with IAM auth on (the first three requests create the user, policy and key)."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "moto_server"), "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="boot",
            aws_secret_access_key="boot",
        )
        iam.create_user(UserName="importer")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="importer", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="importer")["AccessKey"]
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield S3(url, key["AccessKeyId"], key["SecretAccessKey"], client)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Env:
    live: LiveService
    client: Any
    v2: Any
    creds: Any

    def register(self, name: str, addrs: str, password: str | None = None) -> str:
        body: dict[str, Any] = {"name": name, "addrs": addrs}
        if password:
            body["password"] = password
        r = signed(self.live, self.creds, "POST", f"/v2/{self.creds.project_id}/instances", json_body=body)
        assert r.status_code == 200, r.text
        return str(r.json()["instance_id"])

    def create_import(
        self,
        target_id: str,
        files: list[str],
        *,
        bucket: str = "obs",
        name: str = "bucket-import",
        backup_id: str | None = None,
    ) -> str:
        v2 = self.v2
        if backup_id is not None:
            backup_files = v2.BackupFilesBody(file_source="backup_record", backup_id=backup_id)
        else:
            backup_files = v2.BackupFilesBody(
                file_source="self_build_obs",
                bucket_name=bucket,
                files=[v2.Files(file_name=f) for f in files],
            )
        res = self.client.create_migration_task(
            v2.CreateMigrationTaskRequest(
                body=v2.CreateMigrationTaskBody(
                    task_name=name,
                    migration_type="backupfile_import",
                    migration_method="full_amount_migration",
                    backup_files=backup_files,
                    target_instance=v2.TargetInstanceBody(id=target_id),
                )
            )
        )
        assert res.status == "MIGRATING"
        return str(res.id)

    def finish(self, task_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[Any]]:
        v2 = self.v2

        def ended() -> bool:
            status = self.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status
            return status in ("SUCCESS", "FAILED", "TERMINATED")

        wait_for(ended, timeout=timeout)
        detail = self.client.show_migration_task(
            v2.ShowMigrationTaskRequest(task_id=task_id)
        ).to_json_object()
        logs = self.client.list_migration_task_logs(
            v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=1000)
        ).migration_logs
        return detail, logs

    def succeed(self, task_id: str) -> list[str]:
        detail, logs = self.finish(task_id)
        messages = [entry.message for entry in logs]
        assert detail["status"] == "SUCCESS", (detail.get("error_message"), messages)
        return messages


def service(service_factory: Any, sdk: Any, tmp_path: Path, s3: S3, **kw: Any) -> Env:
    buckets: dict[str, Any] = {
        "local": BucketConfig(url=f"file://{tmp_path / 'bucket'}", projects=(PROJECT,)),
        "obs": s3.bucket(),
        "obs-badkey": s3.bucket(secret="not-the-secret"),
    }
    live = service_factory(make_settings(tmp_path, buckets=buckets, **kw))
    creds = live.credentials()
    return Env(live, sdk.client(live.url, creds), sdk.v2, creds)


@pytest.fixture
def env(service_factory: Any, sdk: Any, tmp_path: Path, s3: S3) -> Env:
    return service(service_factory, sdk, tmp_path, s3)


def same(source: RedisServer, target: RedisServer) -> int:
    report = compare_servers([source.client()], [target.client()])
    assert report.ok, report.summary()
    assert report.compared > 0
    return report.compared


def fill(server: RedisServer, prefix: str, n: int) -> None:
    c = server.client()
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}:s:{i}", f"v{i}")
    pipe.hset(f"{prefix}:h", mapping={f"f{i}": str(i) for i in range(50)})
    pipe.rpush(f"{prefix}:l", *[str(i) for i in range(100)])
    pipe.zadd(f"{prefix}:z", {f"m{i}": i for i in range(30)})
    pipe.sadd(f"{prefix}:set", *[f"e{i}" for i in range(20)])
    pipe.set(f"{prefix}:ttl", "x", ex=3600)
    pipe.execute()


def test_single_rdb_from_the_bucket(env: Env, s3: S3, redis_factory: Any) -> None:
    source = redis_factory("source")
    fill(source, "one", 2000)
    s3.client.upload_file(str(source.save()), BUCKET, "nightly/dump.rdb")
    target = redis_factory("target", password="t-pw")
    target_id = env.register("rdb-target", f"127.0.0.1:{target.port}", "t-pw")
    messages = env.succeed(env.create_import(target_id, ["nightly/dump.rdb"]))
    assert same(source, target) == 2005
    assert any(
        m.startswith("file 1/1 nightly/dump.rdb: done: 2005 keys written") for m in messages
    )
    stats = env.client.show_migration_task_stats(
        env.v2.ShowMigrationTaskStatsRequest(
            task_id=env.client.list_migration_task(env.v2.ListMigrationTaskRequest())
            .migration_tasks[0]
            .task_id
        )
    )
    assert stats.full_migration_progress == "100"


def test_shard_rdbs_into_a_cluster(env: Env, s3: S3, redis_factory: Any, redis_cluster: RedisCluster) -> None:
    shards = []
    for i in range(3):
        shard = redis_factory(f"shard{i}")
        fill(shard, f"shard{i}", 700)
        s3.client.upload_file(str(shard.save()), BUCKET, f"cluster/shard{i}.rdb")
        shards.append(shard)
    target_id = env.register("cluster-target", f"127.0.0.1:{redis_cluster.nodes[0].port}")
    task_id = env.create_import(target_id, [f"cluster/shard{i}.rdb" for i in range(3)], name="three-shards")
    messages = env.succeed(task_id)
    result = compare_servers([s.client() for s in shards], cluster_nodes(redis_cluster))
    assert result.ok and result.compared == 3 * 705, result.summary()
    for i in range(3):  # each file has its own start and end line
        assert f"file {i + 1}/3 cluster/shard{i}.rdb: import started" in messages
        assert any(
            m.startswith(f"file {i + 1}/3 cluster/shard{i}.rdb: done: 705 keys written")
            for m in messages
        ), messages
    detail = env.client.show_migration_task(env.v2.ShowMigrationTaskRequest(task_id=task_id)).to_json_object()
    assert [f["file_name"] for f in detail["backup_files"]["files"]] == [
        f"cluster/shard{i}.rdb" for i in range(3)
    ]


@pytest.mark.parametrize("form", ["plain", "rdb-preamble", "multi-part"])
def test_aof_forms_from_the_bucket(form: str, env: Env, s3: S3, redis_factory: Any, tmp_path: Path) -> None:
    if form == "multi-part":
        for f in MULTIPART.iterdir():
            s3.client.upload_file(str(f), BUCKET, f"aof-mp/appendonlydir/{f.name}")
        file_name, source = "aof-mp/appendonlydir/appendonly.aof.manifest", MULTIPART
    else:
        source = PLAIN if form == "plain" else PREAMBLE
        file_name = f"aof-{form}/appendonly.aof"
        s3.client.upload_file(str(source), BUCKET, file_name)
    native = native_aof(redis_factory, tmp_path, "native", source, multipart=source.is_dir())
    target = redis_factory("target")
    target_id = env.register("aof-target", f"127.0.0.1:{target.port}")
    messages = env.succeed(env.create_import(target_id, [file_name], name=f"aof-{form}"))
    same(native, target)
    if form == "multi-part":  # the manifest's base and incr files are each read
        assert any("appendonly.aof.2.base.rdb: reading file" in m for m in messages)
        assert any("appendonly.aof.2.incr.aof: reading file" in m for m in messages)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_from_the_bucket(kind: str, env: Env, s3: S3, redis_factory: Any, tmp_path: Path) -> None:
    note = b"not a backup\n"
    if kind == "zip":
        reference = native_aof(redis_factory, tmp_path, "native", PREAMBLE, multipart=False)
        archive = tmp_path / "backup.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(PREAMBLE, "backup/appendonly.aof")
            zf.writestr("backup/README.txt", note)
    else:
        reference = redis_factory("reference")
        fill(reference, "tgz", 1500)
        archive = tmp_path / "backup.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(reference.save(), "backup/dump.rdb")
            info = tarfile.TarInfo("backup/README.txt")
            info.size = len(note)
            tf.addfile(info, io.BytesIO(note))
    s3.client.upload_file(str(archive), BUCKET, f"archives/{archive.name}")
    target = redis_factory("target")
    target_id = env.register("archive-target", f"127.0.0.1:{target.port}")
    messages = env.succeed(
        env.create_import(target_id, [f"archives/{archive.name}"], name=f"archive-{kind.replace('.', '-')}")
    )
    same(reference, target)
    assert any("README.txt: not an RDB or AOF file, skipped" in m for m in messages)


@pytest.mark.parametrize(
    ("file_name", "bucket", "expected"),
    [
        ("nightly/missing.rdb", "obs", "nightly/missing.rdb: no such object in the bucket"),
        (
            "wrong-key/dump.rdb",
            "obs-badkey",
            "wrong-key/dump.rdb: access denied (SignatureDoesNotMatch",
        ),
        (
            "notes/readme.txt",
            "obs",
            "readme.txt: unsupported backup file type; a backup file must be .rdb, .aof, .zip or .tar.gz",
        ),
    ],
    ids=["missing-object", "wrong-credentials", "unsupported-extension"],
)
def test_failures_fail_the_task_with_a_log_entry(
    file_name: str, bucket: str, expected: str, env: Env, s3: S3, redis_factory: Any
) -> None:
    s3.client.put_object(Bucket=BUCKET, Key="wrong-key/dump.rdb", Body=b"REDIS0009\xff" + b"\x00" * 8)
    s3.client.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"hello")
    target = redis_factory("target")
    target_id = env.register("fail-target", f"127.0.0.1:{target.port}")
    task_id = env.create_import(target_id, [file_name], bucket=bucket, name="failing-import")
    detail, _ = env.finish(task_id)
    assert detail["status"] == "FAILED"
    assert expected in detail["error_message"]
    errors = env.client.list_migration_task_logs(
        env.v2.ListMigrationTaskLogsRequest(task_id=task_id, log_level="ERROR", limit=100)
    ).migration_logs
    assert any(expected in e.message and e.log_code == "migration.error.config" for e in errors), [
        (e.log_code, e.message) for e in errors
    ]
    assert "not-the-secret" not in json.dumps(detail) + str([e.message for e in errors])
    assert target.client().dbsize() == 0


def test_backup_record_in_an_s3_store(
    service_factory: Any, sdk: Any, tmp_path: Path, s3: S3, redis_factory: Any
) -> None:
    """The backup store may be a configured bucket: the RDB goes there by multipart upload.

    A bucket bound to projects cannot hold the store (a tenant would read every project's
    backups): the store is a bucket of its own, bound to no project."""
    settings = make_settings(tmp_path, buckets={"store": s3.bucket(projects=())}, backup_store="store")
    live = service_factory(settings)
    creds = live.credentials()
    env = Env(live, sdk.client(live.url, creds), sdk.v2, creds)
    source = redis_factory("source", password="s-pw", args=["--repl-diskless-sync-delay", "0"])
    fill(source, "store", 3000)
    source_id = env.register("s3-source", f"127.0.0.1:{source.port}", "s-pw")
    v2 = env.v2
    backup_id = env.client.copy_instance(
        v2.CopyInstanceRequest(instance_id=source_id, body=v2.BackupInstanceBody(remark="to s3"))
    ).backup_id

    def record() -> Any:
        rows = env.client.list_backup_records(v2.ListBackupRecordsRequest(instance_id=source_id))
        found = [r for r in rows.backup_record_response if r.backup_id == backup_id]
        return found[0] if found and found[0].status in ("succeed", "failed") else None

    rec = wait_for(record, timeout=30)
    assert rec.status == "succeed" and rec.size > 0
    key = f"{env.creds.project_id}/{source_id}/{backup_id}.rdb"
    assert s3.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == rec.size
    target = redis_factory("target")
    target_id = env.register("s3-restore", f"127.0.0.1:{target.port}")
    env.succeed(env.create_import(target_id, [], backup_id=backup_id, name="restore-from-s3"))
    assert same(source, target) == 3005


def test_keys_stay_under_the_buckets_prefix(
    service_factory: Any, sdk: Any, tmp_path: Path, s3: S3, redis_factory: Any
) -> None:
    """A bucket over s3://dumps/tenant-a/ reads keys under that prefix only, and names them
    relative to it: the store's bucket and prefix are not the tenant's to see."""
    other = redis_factory("other-tenant")
    fill(other, "b", 10)
    s3.client.upload_file(str(other.save()), BUCKET, "tenant-b/dump.rdb")
    mine = redis_factory("mine")
    fill(mine, "a", 300)
    s3.client.upload_file(str(mine.save()), BUCKET, "tenant-a/nightly/dump.rdb")
    buckets = {"tenant-a": s3.bucket(prefix="tenant-a")}
    live = service_factory(make_settings(tmp_path, buckets=buckets))
    creds = live.credentials()
    env = Env(live, sdk.client(live.url, creds), sdk.v2, creds)
    target = redis_factory("target")
    target_id = env.register("prefix-target", f"127.0.0.1:{target.port}")
    for name in ("../tenant-b/dump.rdb", "nightly/../../tenant-b/dump.rdb", "/tenant-b/dump.rdb"):
        with pytest.raises(sdk.ClientRequestException) as exc:
            env.create_import(target_id, [name], bucket="tenant-a")
        assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4063"), name
        assert "outside the bucket" in exc.value.error_msg or "relative to the bucket" in exc.value.error_msg
    assert target.client().dbsize() == 0
    messages = env.succeed(env.create_import(target_id, ["nightly/dump.rdb"], bucket="tenant-a"))
    assert same(mine, target) == 305
    assert any(m.startswith("file 1/1 nightly/dump.rdb: done: 305 keys written") for m in messages), messages
    assert not any("s3://" in m or "tenant-a/" in m for m in messages), messages
