"""Backup import through the SDK with the real engine: RDB files from a file:// bucket."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from conftest import LiveService, signed, wait_for


@pytest.fixture
def env(service_factory: Any, sdk: Any, redis_factory: Any) -> Any:
    live: LiveService = service_factory()  # the real engine
    creds = live.credentials()
    target = redis_factory("import-target", password="t-pw")
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={"name": "import-target", "addrs": f"127.0.0.1:{target.port}", "password": "t-pw"},
    )
    assert r.status_code == 200, r.text
    return live, creds, sdk.client(live.url, creds), target, r.json()["instance_id"]


def import_body(
    v2: Any,
    target_id: str,
    files: list[str],
    *,
    bucket: str = "local",
    name: str = "import-1",
    password: str | None = None,
) -> Any:
    return v2.CreateMigrationTaskRequest(
        body=v2.CreateMigrationTaskBody(
            task_name=name,
            description="nightly dump",
            migration_type="backupfile_import",
            migration_method="full_amount_migration",
            backup_files=v2.BackupFilesBody(
                file_source="self_build_obs",
                bucket_name=bucket,
                files=[v2.Files(file_name=f, size="1") for f in files],
            ),
            target_instance=v2.TargetInstanceBody(id=target_id, password=password),
        )
    )


def test_rdb_import_end_to_end(env: Any, sdk: Any, redis_factory: Any) -> None:
    live, _creds, client, target, target_id = env
    v2 = sdk.v2
    source = redis_factory("import-source")
    src = source.client()
    for i in range(500):
        src.set(f"k:{i}", f"v{i}")
    src.hset("h", mapping={"a": "1", "b": "2"})
    src.rpush("l", *[str(i) for i in range(50)])
    src.select(3)
    src.set("in-db-3", "x")
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    (bucket / "dumps").mkdir()
    shutil.copy(source.save(), bucket / "dumps" / "shard0.rdb")

    res = client.create_migration_task(import_body(v2, target_id, ["dumps/shard0.rdb"]))
    assert res.status_code == 200 and res.status == "MIGRATING"
    assert set(res.to_json_object()) == {"id", "name", "status"} and res.name == "import-1"
    task_id = res.id
    wait_for(
        lambda: (
            client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status
            in ("SUCCESS", "FAILED")
        ),
        timeout=60,
    )
    detail = client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))
    logs = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=100))
    assert detail.status == "SUCCESS", [entry.message for entry in logs.migration_logs]
    bf = detail.to_json_object()["backup_files"]
    assert bf["bucket_name"] == "local" and bf["files"][0]["file_name"] == "dumps/shard0.rdb"
    tgt = target.client()
    assert tgt.dbsize() == 502 and tgt.get("k:42") == b"v42" and tgt.lrange("l", 0, -1)[-1] == b"49"
    assert target.client(db=3).get("in-db-3") == b"x"
    stats = client.show_migration_task_stats(v2.ShowMigrationTaskStatsRequest(task_id=task_id))
    assert stats.full_migration_progress == "100" and stats.is_migrating is False
    assert int(stats.target_dbsize) >= 503
    codes = {entry.log_code for entry in logs.migration_logs}
    assert {"migration.full.start", "migration.full.done"} <= codes
    assert "t-pw" not in str([entry.message for entry in logs.migration_logs])
    listed = client.list_migration_task(v2.ListMigrationTaskRequest(name="import")).migration_tasks[0]
    assert listed.data_source == "local" and listed.status == "SUCCESS"


def test_import_input_errors(env: Any, sdk: Any) -> None:
    live, _creds, client, _target, target_id = env
    v2 = sdk.v2
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    (bucket / "ok.rdb").write_bytes(b"REDIS0009")
    cases = [
        (["../../etc/passwd.rdb"], "local", "DCS.4063", "outside"),
        (["/etc/hosts.rdb"], "local", "DCS.4063", "relative"),
        (["missing.rdb"], "local", "DCS.4063", "not found"),
        (["ok.rdb"], "elsewhere", "DCS.4063", "not configured"),
        (["dump.zip"], "local", "DCS.4063", "zip"),
    ]
    for files, bucket_name, code, words in cases:
        with pytest.raises(sdk.ClientRequestException) as exc:
            client.create_migration_task(import_body(v2, target_id, files, bucket=bucket_name))
        assert (exc.value.status_code, exc.value.error_code) == (400, code), files
        assert words in exc.value.error_msg
    with pytest.raises(sdk.ClientRequestException) as exc:
        client.create_migration_task(import_body(v2, "no-such-instance", ["ok.rdb"]))
    assert (exc.value.status_code, exc.value.error_code) == (404, "DCS.3022")
    with pytest.raises(sdk.ClientRequestException) as exc:
        client.create_migration_task(import_body(v2, target_id, ["ok.rdb"], password="wrong"))
    assert exc.value.error_code == "DCS.4080"
    record = v2.CreateMigrationTaskRequest(
        body=v2.CreateMigrationTaskBody(
            task_name="from-record",
            migration_type="backupfile_import",
            migration_method="full_amount_migration",
            backup_files=v2.BackupFilesBody(file_source="backup_record", backup_id="b-1"),
            target_instance=v2.TargetInstanceBody(id=target_id),
        )
    )
    with pytest.raises(sdk.ClientRequestException) as exc:
        client.create_migration_task(record)
    assert exc.value.error_code == "DCS.4087"


def test_failed_import_is_failed_with_a_log_line(env: Any, sdk: Any) -> None:
    live, _creds, client, _target, target_id = env
    v2 = sdk.v2
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    (bucket / "broken.rdb").write_bytes(b"REDIS0009\xfa\x09redis-ver" + b"\x00" * 3)
    task_id = client.create_migration_task(import_body(v2, target_id, ["broken.rdb"], name="broken-1")).id
    wait_for(
        lambda: client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status == "FAILED",
        timeout=30,
    )
    detail = client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).to_json_object()
    assert detail["error_message"]
    errors = client.list_migration_task_logs(
        v2.ListMigrationTaskLogsRequest(task_id=task_id, log_level="ERROR")
    )
    assert errors.log_num >= 1 and errors.migration_logs[0].log_code.startswith("migration.error.")
