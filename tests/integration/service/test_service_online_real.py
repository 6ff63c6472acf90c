"""Online migrations between real redis-servers through the SDK and the real engine."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import LiveService, signed, wait_for


@pytest.fixture
def env(service_factory: Any, sdk: Any, redis_factory: Any) -> Any:
    live: LiveService = service_factory()
    creds = live.credentials()
    source, target = redis_factory("on-src", password="src-pw"), redis_factory("on-tgt", password="tgt-pw")
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={"name": "online-target", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-pw"},
    )
    assert r.status_code == 200, r.text
    return live, sdk.client(live.url, creds), source, target, r.json()["instance_id"]


def start(sdk: Any, client: Any, source: Any, target_id: str, method: str, name: str) -> str:
    v2 = sdk.v2
    task_id = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(name=name, vpc_id="v", subnet_id="s", security_group_id="g")
        )
    ).instance_id
    res = client.set_online_migration_task(
        v2.SetOnlineMigrationTaskRequest(
            task_id=task_id,
            body=(
                v2.SetOnlineMigrationTaskBody(
                    migration_method=method,
                    resume_mode="auto",
                    source_instance=v2.ConfigMigrationInstanceBody(
                        addrs=f"127.0.0.1:{source.port}", password="src-pw"
                    ),
                    target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
                )
            ),
        )
    )
    assert res.status == "FULLMIGRATING"
    return str(task_id)


def status(sdk: Any, client: Any, task_id: str) -> str:
    return str(client.show_migration_task(sdk.v2.ShowMigrationTaskRequest(task_id=task_id)).status)


def messages(sdk: Any, client: Any, task_id: str) -> list[str]:
    logs = client.list_migration_task_logs(sdk.v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=100))
    return [f"{e.log_level} {e.log_code} {e.message}" for e in logs.migration_logs]


def test_full_online_migration(env: Any, sdk: Any) -> None:
    _live, client, source, target, target_id = env
    src = source.client()
    for i in range(300):
        src.set(f"full:{i}", i)
    src.zadd("z", {"a": 1, "b": 2})
    task_id = start(sdk, client, source, target_id, "full_amount_migration", "online-full")
    wait_for(lambda: status(sdk, client, task_id) in ("SUCCESS", "FAILED"), timeout=60)
    assert status(sdk, client, task_id) == "SUCCESS", messages(sdk, client, task_id)
    tgt = target.client()
    assert tgt.dbsize() == 301 and tgt.get("full:7") == b"7" and tgt.zscore("z", "b") == 2
    assert not any("src-pw" in m or "tgt-pw" in m for m in messages(sdk, client, task_id))


def test_incremental_online_migration_until_stopped(env: Any, sdk: Any) -> None:
    live, client, source, target, target_id = env
    v2 = sdk.v2
    src, tgt = source.client(), target.client()
    for i in range(100):
        src.set(f"inc:{i}", i)
    task_id = start(sdk, client, source, target_id, "incremental_migration", "online-incr")
    wait_for(lambda: status(sdk, client, task_id) in ("INCRMIGEATING", "FAILED"), timeout=60)
    assert status(sdk, client, task_id) == "INCRMIGEATING", messages(sdk, client, task_id)
    wait_for(lambda: tgt.get("inc:99") == b"99", timeout=30)
    src.set("written-later", "yes")
    src.delete("inc:0")
    wait_for(lambda: tgt.get("written-later") == b"yes" and tgt.get("inc:0") is None, timeout=30)
    stats = client.show_migration_task_stats(v2.ShowMigrationTaskStatsRequest(task_id=task_id))
    assert stats.is_migrating is True and stats.full_migration_progress == "100"
    codes = [m.split()[1] for m in messages(sdk, client, task_id)]
    assert "migration.incr.start" in codes
    metrics = httpx.get(live.metrics_url, timeout=60).text
    assert 'cachemigrate_tasks{status="INCRMIGEATING"} 1.0' in metrics
    assert "cachemigrate_tasks_executing 1.0" in metrics
    moved = [ln for ln in metrics.splitlines() if ln.startswith("cachemigrate_keys_moved_total ")]
    assert moved and float(moved[0].split()[1]) >= 100
    assert f'cachemigrate_task_lag_bytes{{task_id="{task_id}"}}' in metrics
    stopped = client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
    assert stopped.status in ("TERMINATING", "TERMINATED")
    wait_for(lambda: status(sdk, client, task_id) == "TERMINATED", timeout=30)
    src.set("after-stop", "1")
    client.batch_restart_online_migration_tasks(
        v2.BatchRestartOnlineMigrationTasksRequest(
            body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[task_id])
        )
    )
    wait_for(lambda: tgt.get("after-stop") == b"1", timeout=60)
    client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=task_id))
    assert status(sdk, client, task_id) == "TERMINATED"
    # A stopped task may be restarted: its exactly-once marker stays; deleting the task removes it.
    markers = list(tgt.scan_iter(match="__cachemigrate:offset:*"))
    assert markers == [f"__cachemigrate:offset:{{127.0.0.1:{source.port}}}".encode()]
    client.delete_migration_task(
        v2.DeleteMigrationTaskRequest(body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id]))
    )
    wait_for(lambda: not list(tgt.scan_iter(match="__cachemigrate:offset:*")), timeout=30)
    assert tgt.dbsize() == src.dbsize()


def test_legacy_one_call_online_create(env: Any, sdk: Any) -> None:
    _live, client, source, target, target_id = env
    v2 = sdk.v2
    source.client().set("legacy", "1")
    res = client.create_migration_task(
        v2.CreateMigrationTaskRequest(
            body=v2.CreateMigrationTaskBody(
                task_name="legacy-online",
                migration_type="online_migration",
                migration_method="full_amount_migration",
                network_type="vpc",
                source_instance=v2.SourceInstanceBody(addrs=f"127.0.0.1:{source.port}", password="src-pw"),
                target_instance=v2.TargetInstanceBody(id=target_id),
            )
        )
    )
    assert res.status == "FULLMIGRATING" and res.name == "legacy-online"
    wait_for(lambda: status(sdk, client, res.id) in ("SUCCESS", "FAILED"), timeout=60)
    assert status(sdk, client, res.id) == "SUCCESS" and target.client().get("legacy") == b"1"
    detail = client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=res.id)).to_json_object()
    assert (
        detail["network_type"] == "vpc" and detail["source_instance"]["addrs"] == f"127.0.0.1:{source.port}"
    )
    assert (
        detail["source_instance"]["port"] == str(source.port) and "password" not in detail["source_instance"]
    )
