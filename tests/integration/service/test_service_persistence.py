"""Restarts: tasks, credentials, instances, logs and checkpoints survive; running tasks resume
(resume_mode auto) or fail with a log line (manual). On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from conftest import FakeExecutor, LiveService, make_settings, signed, wait_for
from support.pg import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'svc.db'}"
        return
    with pg_schema() as (_, url):
        yield url


def test_restart_resumes_and_keeps_everything(
    database_url: str, tmp_path: Path, service_factory: Any, sdk: Any, redis_factory: Any
) -> None:
    v2 = sdk.v2
    settings = make_settings(tmp_path, database_url=database_url)
    first_exec = FakeExecutor(full_seconds=0.1)
    live: LiveService = service_factory(settings, executor=first_exec)
    creds = live.credentials()
    client = sdk.client(live.url, creds)
    source, target = redis_factory("p-src"), redis_factory("p-tgt", password="target-password-123")
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={
            "name": "persist-target",
            "addrs": f"127.0.0.1:{target.port}",
            "password": "target-password-123",
        },
    )
    target_id = r.json()["instance_id"]

    ids = {}
    for mode in ("auto", "manual"):
        tid = client.create_online_migration_task(
            v2.CreateOnlineMigrationTaskRequest(
                body=v2.CreateOnlineMigrationTaskBody(
                    name=f"persist-{mode}", vpc_id="v", subnet_id="s", security_group_id="g"
                )
            )
        ).instance_id
        client.set_online_migration_task(
            v2.SetOnlineMigrationTaskRequest(
                task_id=tid,
                body=(
                    v2.SetOnlineMigrationTaskBody(
                        migration_method="incremental_migration",
                        resume_mode=mode,
                        source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
                        target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
                    )
                ),
            )
        )
        ids[mode] = tid
    for tid in ids.values():
        wait_for(
            lambda t=tid: (
                client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=t)).status == "INCRMIGEATING"
            )
        )
    wait_for(
        lambda: (
            live.services.db.run_sync(
                lambda s: s.execute(text("SELECT count(*) FROM task_checkpoints")).scalar()
            )
            == 2
        )
    )
    # Secrets are encrypted at rest.
    with live.services.db.engine.connect() as conn:
        dump = repr(conn.execute(text("SELECT * FROM tasks")).all())
        dump += repr(conn.execute(text("SELECT * FROM instances")).all())
        dump += repr(conn.execute(text("SELECT * FROM credentials")).all())
        dump += repr(conn.execute(text("SELECT * FROM task_logs")).all())
    assert "target-password-123" not in dump and creds.sk not in dump
    live.stop()

    second_exec = FakeExecutor(full_seconds=0.1)
    again: LiveService = service_factory(settings, executor=second_exec)
    client = sdk.client(again.url, creds)  # the same AK/SK still work
    auto, manual = ids["auto"], ids["manual"]
    wait_for(
        lambda: client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=manual)).status == "FAILED"
    )
    failed = client.list_migration_task_logs(
        v2.ListMigrationTaskLogsRequest(task_id=manual, log_level="ERROR")
    )
    assert failed.migration_logs[0].log_code == "migration.error.interrupted"
    wait_for(lambda: second_exec.specs)
    assert second_exec.specs[0].source.endpoint is not None
    assert second_exec.specs[0].target.password == "target-password-123"
    assert second_exec.loaded[0] is not None and second_exec.loaded[0].offset == 150
    wait_for(
        lambda: (
            client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=auto)).status == "INCRMIGEATING"
        )
    )

    def codes() -> list[str]:
        logs = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=auto, limit=100))
        return [entry.log_code for entry in logs.migration_logs]

    wait_for(lambda: codes().count("migration.full.start") == 2)
    assert "migration.resume" in codes()
    assert client.list_instances(v2.ListInstancesRequest()).instance_num == 1
    assert client.list_migration_task(v2.ListMigrationTaskRequest()).count == 2
    client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=auto))
    assert client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=auto)).status == "TERMINATED"
