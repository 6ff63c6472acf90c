"""Instance backups through the official SDK: copy_instance, list_backup_records, and imports with
file_source=backup_record, against real redis-servers; plus the `cachemigrate backups` commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachemigrate.engine.backup import FileSink, fetch_rdb
from cachemigrate.engine.spec import Endpoint
from conftest import SECRET, LiveService, signed, wait_for
from support.compare import compare_servers
from support.servers import RedisServer, require_redis6

CLI = str(Path(sys.executable).parent / "cachemigrate")
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


class Env:
    def __init__(self, live: LiveService, sdk: Any, project_id: str | None = None) -> None:
        self.live = live
        self.creds = live.credentials(project_id) if project_id else live.credentials()
        self.client = sdk.client(live.url, self.creds)
        self.v2 = sdk.v2
        self.error = sdk.ClientRequestException

    def register(self, name: str, server: RedisServer) -> str:
        body: dict[str, Any] = {"name": name, "addrs": f"127.0.0.1:{server.port}"}
        if server.password:
            body["password"] = server.password
        r = signed(self.live, self.creds, "POST", f"/v2/{self.creds.project_id}/instances", json_body=body)
        assert r.status_code == 200, r.text
        return str(r.json()["instance_id"])

    def backup(self, instance_id: str, remark: str = "") -> str:
        v2 = self.v2
        res = self.client.copy_instance(
            v2.CopyInstanceRequest(instance_id=instance_id, body=v2.BackupInstanceBody(remark=remark))
        )
        return str(res.backup_id)

    def records(self, instance_id: str, **query: Any) -> Any:
        return self.client.list_backup_records(
            self.v2.ListBackupRecordsRequest(instance_id=instance_id, **query)
        )

    def finished(self, instance_id: str, backup_id: str) -> Any:
        def done() -> Any:
            rows = [
                r
                for r in self.records(instance_id, limit=1000).backup_record_response
                if r.backup_id == backup_id
            ]
            return rows[0] if rows and rows[0].status in ("succeed", "failed") else None

        return wait_for(done, timeout=30)

    def restore(self, backup_id: str, target_id: str, name: str = "restore-1") -> str:
        v2 = self.v2
        res = self.client.create_migration_task(
            v2.CreateMigrationTaskRequest(
                body=v2.CreateMigrationTaskBody(
                    task_name=name,
                    migration_type="backupfile_import",
                    migration_method="full_amount_migration",
                    backup_files=v2.BackupFilesBody(file_source="backup_record", backup_id=backup_id),
                    target_instance=v2.TargetInstanceBody(id=target_id),
                )
            )
        )
        return str(res.id)

    def succeed(self, task_id: str) -> dict[str, Any]:
        v2 = self.v2
        wait_for(
            lambda: (
                self.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status
                in ("SUCCESS", "FAILED")
            ),
            timeout=60,
        )
        detail: dict[str, Any] = self.client.show_migration_task(
            v2.ShowMigrationTaskRequest(task_id=task_id)
        ).to_json_object()
        logs = self.client.list_migration_task_logs(
            v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=100)
        )
        assert detail["status"] == "SUCCESS", (
            detail.get("error_message"),
            [e.message for e in logs.migration_logs],
        )
        return detail


@pytest.fixture
def env(service_factory: Any, sdk: Any) -> Env:
    return Env(service_factory(), sdk)


def fill(server: RedisServer, n: int) -> None:
    c = server.client()
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"k:{i}", f"v{i}" * 10)
    pipe.hset("h", mapping={f"f{i}": str(i) for i in range(100)})
    pipe.rpush("l", *[str(i) for i in range(200)])
    pipe.zadd("z", {f"m{i}": i for i in range(50)})
    pipe.set("ttl", "x", ex=3600)
    pipe.execute()
    server.client(db=2).set("in-db-2", "y")


# Redis 7 waits repl-diskless-sync-delay (5 s) for more replicas before a diskless transfer.
FAST = ["--repl-diskless-sync-delay", "0"]


def same(source: RedisServer, target: RedisServer) -> int:
    report = compare_servers([source.client()], [target.client()])
    assert report.ok, report.summary()
    return report.compared


def test_backup_round_trip(env: Env, redis_factory: Any) -> None:
    source = redis_factory("source", password="s-pw", args=FAST)
    fill(source, 5000)
    source_id = env.register("backup-source", source)
    backup_id = env.backup(source_id, remark="before the upgrade")
    rec = env.finished(source_id, backup_id)
    raw = env.records(source_id).to_json_object()
    assert raw["total_num"] == 1
    [item] = raw["backup_record_response"]
    assert set(item) >= {
        "backup_id",
        "backup_name",
        "instance_id",
        "size",
        "backup_type",
        "status",
        "created_at",
        "updated_at",
        "progress",
        "remark",
        "is_support_restore",
        "backup_format",
        "period",
        "execution_at",
    }
    assert (rec.status, rec.is_support_restore, rec.progress, rec.backup_format, rec.backup_type) == (
        "succeed",
        "TRUE",
        "100.00",
        "rdb",
        "manual",
    )
    assert rec.instance_id == source_id and rec.remark == "before the upgrade" and isinstance(rec.size, int)
    stored = (
        env.live.settings.data_dir.resolve()
        / "backups"
        / env.creds.project_id
        / source_id
        / f"{backup_id}.rdb"
    )
    assert stored.stat().st_size == rec.size and stored.read_bytes().startswith(b"REDIS")

    target = redis_factory("target")
    target_id = env.register("restore-target", target)
    task_id = env.restore(backup_id, target_id)
    detail = env.succeed(task_id)
    assert detail["backup_files"]["file_source"] == "backup_record"
    assert detail["backup_files"]["backup_id"] == backup_id
    assert detail["backup_files"]["backup_record"] == {"backup_id": backup_id}
    assert same(source, target) == 5005


def test_backup_listing_pages_and_errors(
    env: Env, service_factory: Any, sdk: Any, redis_factory: Any
) -> None:
    source = redis_factory("source", args=FAST)
    fill(source, 100)
    source_id = env.register("paged-source", source)
    first = env.backup(source_id)
    env.finished(source_id, first)
    second = env.backup(source_id)
    env.finished(source_id, second)
    page = env.records(source_id, offset=0, limit=1)
    assert page.total_num == 2 and [r.backup_id for r in page.backup_record_response] == [second]
    page = env.records(source_id, offset=1, limit=1)
    assert page.total_num == 2 and [r.backup_id for r in page.backup_record_response] == [first]
    page = env.records(source_id, offset=2, limit=10)
    assert page.total_num == 2 and page.backup_record_response == []
    assert env.records(source_id, begin_time="29991231000000").total_num == 0
    assert env.records(source_id, begin_time="20000101000000", end_time="29991231235959").total_num == 2
    for query in ({"limit": 0}, {"offset": -1}, {"begin_time": "2024-01-01"}):
        with pytest.raises(env.error) as exc:
            env.records(source_id, **query)
        assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4063"), query

    target = redis_factory("target")
    target_id = env.register("error-target", target)
    with pytest.raises(env.error) as exc:
        env.restore("no-such-backup", target_id)
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4087")
    assert "no-such-backup does not exist" in exc.value.error_msg
    with pytest.raises(env.error) as exc:
        env.backup("no-such-instance")
    assert (exc.value.status_code, exc.value.error_code) == (404, "DCS.3022")

    # A backup that fails (the server is gone) is listed as failed and cannot be restored.
    gone = redis_factory("gone")
    gone_id = env.register("gone-source", gone)
    gone.stop()
    failed_id = env.backup(gone_id)
    rec = env.finished(gone_id, failed_id)
    assert (rec.status, rec.is_support_restore, rec.error_code) == ("failed", "FALSE", "dcs.08.0001")
    with pytest.raises(env.error) as exc:
        env.restore(failed_id, target_id)
    assert exc.value.error_code == "DCS.4087" and "is failed" in exc.value.error_msg

    # Another project sees neither the instance's backups nor the backup itself.
    other = Env(env.live, sdk, OTHER_PROJECT)
    with pytest.raises(env.error) as exc:
        other.records(source_id)
    assert (exc.value.status_code, exc.value.error_code) == (404, "DCS.3022")
    other_target = redis_factory("other-target")
    other_target_id = other.register("other-target", other_target)
    with pytest.raises(env.error) as exc:
        other.restore(first, other_target_id)
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4087")
    assert other_target.client().dbsize() == 0


def test_fetch_rdb_uses_rdb_only_on_redis_7_and_psync_before(redis_factory: Any, tmp_path: Path) -> None:
    seven = redis_factory("seven", args=FAST)
    fill(seven, 300)
    result = asyncio.run(fetch_rdb(Endpoint.from_url(seven.url), FileSink(tmp_path / "seven.rdb")))
    assert result.rdb_only and result.size == (tmp_path / "seven.rdb").stat().st_size
    assert not (tmp_path / "seven.rdb.part").exists()
    wait_for(lambda: seven.client().info("replication")["connected_slaves"] == 0)
    binary = require_redis6()
    six = redis_factory("six", binary=binary)
    fill(six, 300)
    result = asyncio.run(fetch_rdb(Endpoint.from_url(six.url), FileSink(tmp_path / "six.rdb")))
    assert not result.rdb_only and result.size == (tmp_path / "six.rdb").stat().st_size
    # The fetched file is the server's data: a Redis 6 started on it holds the same keys.
    (tmp_path / "six-copy").mkdir()
    (tmp_path / "six-copy" / "dump.rdb").write_bytes((tmp_path / "six.rdb").read_bytes())
    assert same(six, redis_factory("six-copy", binary=binary)) == 305


def test_backup_commands(env: Env, redis_factory: Any, tmp_path: Path) -> None:
    source = redis_factory("cli-source", args=FAST)
    fill(source, 200)
    source_id = env.register("cli-source", source)
    settings = env.live.settings
    cli_env = {
        **os.environ,
        "CACHEMIGRATE_SECRET_KEY": SECRET,
        "CACHEMIGRATE_DATA_DIR": str(settings.data_dir),
        "CACHEMIGRATE_DATABASE_URL": settings.sqlalchemy_url(),
        "HOME": str(tmp_path),
    }
    made = subprocess.run(
        [CLI, "backups", "create", "--instance", source_id],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(": ", 1) for line in made.stdout.strip().splitlines())
    assert lines["status"] == "succeed" and int(lines["size"]) > 0
    listed = subprocess.run(
        [CLI, "backups", "list", "--instance", source_id],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0 and lines["backup_id"] in listed.stdout and "succeed" in listed.stdout
    # The service lists it and restores it.
    assert [r.backup_id for r in env.records(source_id).backup_record_response] == [lines["backup_id"]]
    target = redis_factory("cli-target")
    env.succeed(env.restore(lines["backup_id"], env.register("cli-target", target), name="cli-restore"))
    assert same(source, target) == 205
    unknown = subprocess.run(
        [CLI, "backups", "create", "--instance", "nope"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 1 and "no instance nope" in unknown.stderr


def stored_file(env: Env, instance_id: str, backup_id: str) -> Path:
    root = env.live.settings.data_dir.resolve() / "backups"
    return root / env.creds.project_id / instance_id / f"{backup_id}.rdb"


def delete(env: Env, instance_id: str, backup_id: str) -> Any:
    return env.client.delete_backup_file(
        env.v2.DeleteBackupFileRequest(instance_id=instance_id, backup_id=backup_id)
    )


def delete_error(env: Env, instance_id: str, backup_id: str) -> tuple[int, str, str]:
    with pytest.raises(env.error) as exc:
        delete(env, instance_id, backup_id)
    return exc.value.status_code, exc.value.error_code, exc.value.error_msg


@pytest.fixture
def slow_env(service_factory: Any, sdk: Any, fake_executor: Any, tmp_path: Path) -> Env:
    """Imports that run until stopped (the fake executor's full phase lasts a minute)."""
    from conftest import make_settings

    fake_executor.full_seconds = 60.0
    settings = make_settings(tmp_path, stop_grace_seconds=0.2, backup_retention_count=2)
    return Env(service_factory(settings, executor=fake_executor), sdk)


def test_backup_delete(slow_env: Env, sdk: Any, redis_factory: Any) -> None:
    env = slow_env
    source = redis_factory("source", args=FAST)
    fill(source, 100)
    source_id = env.register("delete-source", source)
    backup_id = env.backup(source_id)
    assert env.finished(source_id, backup_id).status == "succeed"
    path = stored_file(env, source_id, backup_id)
    assert path.is_file()

    # In use: a running import of it keeps it (file and record) until the import is over.
    target_id = env.register("delete-target", redis_factory("target"))
    task_id = env.restore(backup_id, target_id)
    v2 = env.v2

    def status() -> str:
        return str(env.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    wait_for(lambda: status() == "MIGRATING")
    code = delete_error(env, source_id, backup_id)
    assert code[:2] == (400, "DCS.4097") and "running migration task" in code[2]
    assert path.is_file() and env.records(source_id).total_num == 1
    env.client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
    wait_for(lambda: status() == "TERMINATED")

    # Another project does not see it; a wrong instance, no such backup, no such instance.
    other = Env(env.live, sdk, OTHER_PROJECT)
    assert delete_error(other, source_id, backup_id)[:2] == (404, "DCS.3022")
    other_id = other.register("other-source", source)
    assert delete_error(other, other_id, backup_id)[:2] == (400, "DCS.4087")
    assert delete_error(env, target_id, backup_id)[:2] == (400, "DCS.4087")
    assert delete_error(env, source_id, "no-such-backup")[:2] == (400, "DCS.4087")
    assert delete_error(env, "no-such-instance", backup_id)[:2] == (404, "DCS.3022")
    assert path.is_file()

    res = delete(env, source_id, backup_id)
    assert res.status_code == 204
    assert not path.exists() and env.records(source_id).total_num == 0
    assert delete_error(env, source_id, backup_id)[:2] == (400, "DCS.4087")
    # The task that imported it now fails on a restart, naming the backup.
    env.client.batch_restart_online_migration_tasks(
        v2.BatchRestartOnlineMigrationTasksRequest(
            body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[task_id])
        )
    )
    wait_for(lambda: status() == "FAILED")

    # A backup still being taken cannot be deleted either.
    from cachemigrate.service.db import backups as brepo

    taking = env.live.services.db.run_sync(
        brepo.add_backup, project_id=env.creds.project_id, instance_id=source_id, name="taking",
        remark="", location=str(path),
    )
    code = delete_error(env, source_id, taking.id)
    assert code[:2] == (400, "DCS.4096") and "still being taken" in code[2]


def test_backup_retention_keeps_the_newest(slow_env: Env, redis_factory: Any) -> None:
    env = slow_env  # backup_retention_count=2
    source = redis_factory("source", args=FAST)
    fill(source, 100)
    source_id = env.register("kept-source", source)
    gone = redis_factory("gone")
    gone_id = env.register("gone-source", gone)
    gone.stop()
    failed = env.backup(gone_id)
    assert env.finished(gone_id, failed).status == "failed"
    taken = []
    for _ in range(4):
        taken.append(env.backup(source_id))
        assert env.finished(source_id, taken[-1]).status == "succeed"
        kept = [r.backup_id for r in env.records(source_id, limit=100).backup_record_response]
        assert kept == taken[::-1][:2]  # newest first, at most two
    assert [p.name for p in sorted(stored_file(env, source_id, "x").parent.iterdir())] == sorted(
        f"{b}.rdb" for b in taken[-2:]
    )
    # Another instance's backups (here a failed one) are not touched.
    assert [r.backup_id for r in env.records(gone_id).backup_record_response] == [failed]


def test_backup_delete_command(env: Env, redis_factory: Any, tmp_path: Path) -> None:
    source = redis_factory("cli-source", args=FAST)
    fill(source, 50)
    source_id = env.register("cli-delete", source)
    backup_id = env.backup(source_id)
    assert env.finished(source_id, backup_id).status == "succeed"
    path = stored_file(env, source_id, backup_id)
    settings = env.live.settings
    cli_env = {
        **os.environ,
        "CACHEMIGRATE_SECRET_KEY": SECRET,
        "CACHEMIGRATE_DATA_DIR": str(settings.data_dir),
        "CACHEMIGRATE_DATABASE_URL": settings.sqlalchemy_url(),
        "HOME": str(tmp_path),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "backups", "delete", *args],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    wrong = cli(backup_id, "--project-id", OTHER_PROJECT)
    assert wrong.returncode == 1 and wrong.stderr.strip() == (
        f"cachemigrate: error: no backup {backup_id} in project {OTHER_PROJECT}"
    )
    assert path.is_file()
    done = cli(backup_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deleted: {backup_id}"
    assert not path.exists() and env.records(source_id).total_num == 0
    again = cli(backup_id)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
