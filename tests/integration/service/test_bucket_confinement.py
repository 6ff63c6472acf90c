"""Buckets as a trust boundary, through the service API with the real engine and a real target.

A bucket serves only the projects bound to it, and every file an import opens (the names given,
a manifest's files, a directory's manifest, archive members) stays inside it after symlinks are
resolved. Each refusal is a DCS 400 (or a FAILED task when it is found while the task runs), writes
nothing to the target, and names files bucket-relative: no server path in the answer or the task
log, and nothing of the file outside (another project's backup, a passwd file) shows anywhere.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cachemigrate.service.settings import BucketConfig
from conftest import PROJECT, Creds, LiveService, make_settings, signed, wait_for
from support.compare import compare_servers
from support.corpus import CORPUS
from support.servers import RedisServer, native_aof

MULTIPART = CORPUS / "generated-local" / "redis-7.0.15-multipart-rdbpreamble" / "appendonlydir"
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"
PASSWD = b"root:x:0:0:root:/root:/bin/bash\n"


@dataclass
class Env:
    live: LiveService
    creds: Creds
    bucket: Path
    tmp: Path
    target: RedisServer
    target_id: str
    victim: Path  # another project's backup RDB, outside every bucket of ours

    def create(self, files: list[str], *, bucket: str = "local", creds: Creds | None = None) -> Any:
        creds = creds or self.creds
        body = {
            "task_name": "confined-import",
            "migration_type": "backupfile_import",
            "migration_method": "full_amount_migration",
            "backup_files": {"file_source": "self_build_obs", "bucket_name": bucket,
                             "files": [{"file_name": f} for f in files]},
            "target_instance": {"id": self.target_id},
        }
        return signed(self.live, creds, "POST", f"/v2/{creds.project_id}/migration-task", json_body=body)

    def refused(self, files: list[str], words: str, **kw: Any) -> dict[str, Any]:
        r = self.create(files, **kw)
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error_code"] == "DCS.4063" and words in body["error_msg"], body
        self.nothing_leaked(r.text)
        return dict(body)

    def get(self, path: str, query: str = "") -> Any:
        r = signed(self.live, self.creds, "GET", f"/v2/{self.creds.project_id}{path}", query=query)
        assert r.status_code == 200, r.text
        return r.json()

    def finish(self, task_id: str) -> tuple[dict[str, Any], list[str], str]:
        def ended() -> dict[str, Any] | None:
            detail = self.get(f"/migration-task/{task_id}")
            return detail if detail["status"] in ("SUCCESS", "FAILED", "TERMINATED") else None

        detail = wait_for(ended, timeout=60)
        logs = self.get(f"/migration-task/{task_id}/logs", "limit=1000")
        text = json.dumps(detail) + json.dumps(logs)
        return detail, [e["message"] for e in logs["migration_logs"]], text

    def nothing_leaked(self, text: str) -> None:
        """No server path, nothing of the files outside the bucket."""
        for secret in (str(self.tmp), str(self.tmp.resolve()), "root:x", "victim:"):
            assert secret not in text, (secret, text)

    def tasks(self) -> int:
        return int(self.get("/migration-tasks")["count"])


@pytest.fixture
def env(service_factory: Any, redis_factory: Any, tmp_path: Path) -> Env:
    victim_server = redis_factory("victim")  # another project's data; its RDB is outside the buckets
    victim_server.client().mset({f"victim:{i}": "secret" for i in range(100)})
    victim = victim_server.save()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(PASSWD)
    other = tmp_path / "other-bucket"
    other.mkdir()
    shutil.copy(victim, other / "dump.rdb")
    buckets = {
        "local": BucketConfig(url=f"file://{tmp_path / 'bucket'}", projects=(PROJECT,)),
        "theirs": BucketConfig(url=f"file://{other}", projects=(OTHER_PROJECT,)),
        "orphan": f"file://{other}",  # a plain string: bound to no project
    }
    live = service_factory(make_settings(tmp_path, buckets=buckets))
    creds = live.credentials()
    target = redis_factory("target")
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/instances",
               json_body={"name": "confined-target", "addrs": f"127.0.0.1:{target.port}"})
    assert r.status_code == 200, r.text
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    return Env(live, creds, bucket, tmp_path, target, r.json()["instance_id"], victim)


def manifest(folder: Path, *entries: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"file {e} seq {i + 1} type {'b' if i == 0 else 'i'}\n" for i, e in enumerate(entries)]
    (folder / "appendonly.aof.manifest").write_text("".join(lines))


def test_every_way_out_of_the_bucket_is_refused_before_the_task_exists(env: Env) -> None:
    b = env.bucket
    (b / "leak.rdb").symlink_to(env.victim)  # the RDB of another project, by a symlink
    manifest(b / "dotdot", "../../etc/passwd")
    manifest(b / "linked", "appendonly.aof.1.base.rdb")
    (b / "linked" / "appendonly.aof.1.base.rdb").symlink_to(env.victim)
    manifest(b / "passwd", "appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof")
    (b / "passwd" / "appendonly.aof.1.base.rdb").write_bytes(env.victim.read_bytes())
    (b / "passwd" / "appendonly.aof.1.incr.aof").symlink_to(env.tmp / "etc" / "passwd")
    (b / "escape").symlink_to(env.tmp)  # a directory symlinked out
    (b / "loop-a.rdb").symlink_to(b / "loop-b.rdb")
    (b / "loop-b.rdb").symlink_to(b / "loop-a.rdb")
    (b / "folder.rdb").mkdir()
    long_name = "x" * 252 + ".rdb"  # a 256-byte name part
    linked = ("cannot open linked/appendonly.aof.1.base.rdb: outside the bucket "
              "(listed in linked/appendonly.aof.manifest)")
    cases: list[tuple[list[str], str]] = [
        (["leak.rdb"], "cannot open leak.rdb: outside the bucket"),
        (["dotdot/appendonly.aof.manifest"], "file can't be a path, just a filename: '../../etc/passwd'"),
        (["dotdot"], "file can't be a path"),  # the directory's manifest: the same check
        (["linked/appendonly.aof.manifest"], linked),
        (["linked"], "linked/appendonly.aof.1.base.rdb: outside the bucket"),
        (["passwd/appendonly.aof.manifest"], "cannot open passwd/appendonly.aof.1.incr.aof: outside"),
        (["escape/etc/passwd.aof"], "cannot open escape/etc/passwd.aof: outside the bucket"),
        (["escape/other-bucket/dump.rdb"], "outside the bucket"),
        (["loop-a.rdb"], "cannot open loop-a.rdb: a symlink loop"),
        ([long_name], "a part of the name is longer than 255 bytes"),
        ([f"dir/{long_name}/x.rdb"], "a part of the name is longer than 255 bytes"),
        (["../other-bucket/dump.rdb"], "is outside the bucket"),
        (["/etc/passwd.aof"], "must be a path relative to the bucket"),
        (["missing.rdb"], "cannot open missing.rdb: not found in the bucket"),
        (["folder.rdb"], "cannot open folder.rdb: a directory, not a file"),
        (["leak.rdb/x.rdb"], "outside the bucket"),
    ]
    for files, words in cases:
        env.refused(files, words)
    assert env.tasks() == 0
    assert env.target.client().dbsize() == 0


def test_another_projects_bucket_answers_like_one_that_does_not_exist(env: Env) -> None:
    answers = set()
    for bucket in ("theirs", "orphan", "no-such-bucket"):
        body = env.refused(["dump.rdb"], "is not configured for this project", bucket=bucket)
        answers.add(json.dumps(body).replace(bucket, "B"))
    assert len(answers) == 1, answers  # word for word: no existence oracle
    # The project it is bound to reads it (the binding is what decides, not the bucket).
    theirs = env.live.credentials(OTHER_PROJECT)
    r = env.create(["nothing-here.rdb"], bucket="theirs", creds=theirs)
    assert r.status_code == 400 and "not found in the bucket" in r.json()["error_msg"], r.text
    assert env.target.client().dbsize() == 0


def test_file_lists_are_bounded_and_without_repeats(env: Env) -> None:
    (env.bucket / "a.rdb").write_bytes(env.victim.read_bytes())
    env.refused(["a.rdb", "a.rdb"], "named more than once")
    env.refused(["a.rdb", "./a.rdb"], "named more than once")
    env.refused([f"{i}.rdb" for i in range(10_000)], "at most 1000")
    assert env.tasks() == 0 and env.target.client().dbsize() == 0


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("members", "words"),
    [
        (lambda rdb: [(tarfile.TarInfo("../x.rdb"), rdb)], "file '../x.rdb' is outside the archive evil.tar"),
        (lambda rdb: [(tarfile.TarInfo("/abs/x.rdb"), rdb)], "must be a path relative to the archive"),
        (lambda rdb: [(symlink("l.rdb", "../../etc/passwd"), None), (tarfile.TarInfo("x.rdb"), rdb)],
         "evil.tar.gz!l.rdb: a link to outside the archive"),
    ],
    ids=["dotdot-member", "absolute-member", "symlink-member"],
)
def test_archive_members_outside_the_archive_fail_the_task(env: Env, members: Any, words: str) -> None:
    (env.bucket / "evil.tar.gz").write_bytes(tar_gz(members(env.victim.read_bytes())))
    r = env.create(["evil.tar.gz"])
    assert r.status_code == 200, r.text  # an archive's members are read (and checked) when it runs
    detail, messages, text = env.finish(r.json()["id"])
    assert detail["status"] == "FAILED" and words in detail["error_message"], (detail, messages)
    assert any(words in m for m in messages)
    env.nothing_leaked(text)
    assert env.target.client().dbsize() == 0


def test_files_swapped_for_symlinks_after_the_check_are_refused_when_the_task_runs(env: Env) -> None:
    """The engine checks again what it opens: a file the create check saw may be a symlink out by
    the time the task (re)starts, and a manifest's files are checked by the reader itself."""
    b = env.bucket
    broken = b"REDIS0009\xfa\x09redis-ver" + b"\x00" * 3  # fails the first run, writes nothing
    (b / "swap.rdb").write_bytes(broken)
    manifest(b / "mp", "appendonly.aof.1.base.rdb")
    (b / "mp" / "appendonly.aof.1.base.rdb").write_bytes(broken)
    ids = []
    for name in ("swap.rdb", "mp/appendonly.aof.manifest"):
        r = env.create([name])
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
        assert env.finish(ids[-1])[0]["status"] == "FAILED"
    (b / "swap.rdb").unlink()
    (b / "swap.rdb").symlink_to(env.victim)
    (b / "mp" / "appendonly.aof.1.base.rdb").unlink()
    (b / "mp" / "appendonly.aof.1.base.rdb").symlink_to(env.victim)
    r = signed(env.live, env.creds, "POST", f"/v2/{env.creds.project_id}/migration-tasks/batch-restart",
               json_body={"migration_tasks": ids})
    assert r.status_code == 200, r.text
    expected = ["cannot open swap.rdb: outside the bucket", "open mp/appendonly.aof.1.base.rdb: outside"]
    for task_id, words in zip(ids, expected, strict=True):
        wait_for(lambda t=task_id: any("task restarted" in m for m in env.finish(t)[1]), timeout=30)
        detail, messages, text = env.finish(task_id)
        assert detail["status"] == "FAILED" and words in detail["error_message"], (detail, messages)
        env.nothing_leaked(text)
    assert env.target.client().dbsize() == 0


def test_a_multi_part_aof_from_the_bucket_compares_equal(env: Env, redis_factory: Any) -> None:
    shutil.copytree(MULTIPART, env.bucket / "backups" / "appendonlydir")
    (env.bucket / "backups" / "latest").symlink_to("appendonlydir")  # a symlink inside is fine
    native = native_aof(redis_factory, env.tmp, "native", MULTIPART, multipart=True)
    for name in ("backups/appendonlydir/appendonly.aof.manifest", "backups/latest"):
        env.target.client().flushall()
        r = env.create([name])
        assert r.status_code == 200, r.text
        detail, messages, text = env.finish(r.json()["id"])
        assert detail["status"] == "SUCCESS", (detail, messages)
        report = compare_servers([native.client()], [env.target.client()])
        assert report.ok and report.compared > 0, report.summary()
        folder = name.rsplit("/", 1)[0] if name.endswith(".manifest") else name
        assert any(m.startswith(f"{folder}/appendonly.aof.2.base.rdb: reading") for m in messages), messages
        assert any(m.startswith(f"{folder}/appendonly.aof.2.incr.aof: reading file") for m in messages)
        env.nothing_leaked(text)


def test_compressed_files_outside_are_not_followed(env: Env) -> None:
    """An archive symlinked out is refused like any other name, before a byte of it is read."""
    (env.tmp / "victim.tar.gz").write_bytes(tar_gz([(tarfile.TarInfo("dump.rdb"), env.victim.read_bytes())]))
    (env.tmp / "victim.rdb.gz").write_bytes(gzip.compress(env.victim.read_bytes()))
    (env.bucket / "backup.tar.gz").symlink_to(env.tmp / "victim.tar.gz")
    (env.bucket / "backup.aof.gz").symlink_to(env.tmp / "victim.rdb.gz")
    env.refused(["backup.tar.gz"], "cannot open backup.tar.gz: outside the bucket")
    env.refused(["backup.aof.gz"], "cannot open backup.aof.gz: outside the bucket")
    assert env.tasks() == 0 and env.target.client().dbsize() == 0
