"""Faults under the service (issue 13): the target goes away, the service restarts while the
source is down, a sync-stop comes during a reconnect backoff; real redis-servers, the real engine,
the SDK. Resume mode auto waits in every case, and the target ends equal with every INCR once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cachemigrate.engine.readers import sync
from conftest import LiveService, make_settings, signed, wait_for
from support.compare import compare_servers
from support.counters import CounterWriter, fault_row
from support.servers import RedisServer

FAST = ["--repl-diskless-sync-delay", "0"]
AOF = ["--appendonly", "yes", "--appendfsync", "always"]


def _register(live: LiveService, creds: Any, target: RedisServer) -> str:
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/instances",
               json_body={"name": "fault-target", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-pw"})
    assert r.status_code == 200, r.text
    return str(r.json()["instance_id"])


def _start(sdk: Any, client: Any, source: RedisServer, target_id: str) -> str:
    v2 = sdk.v2
    task_id = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
        body=v2.CreateOnlineMigrationTaskBody(name="faults", vpc_id="v", subnet_id="s", security_group_id="g")
    )).instance_id
    client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(task_id=task_id, body=(
        v2.SetOnlineMigrationTaskBody(
            migration_method="incremental_migration", resume_mode="auto",
            source_instance=v2.ConfigMigrationInstanceBody(
                addrs=f"127.0.0.1:{source.port}", password="src-pw"
            ),
            target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
        )
    )))
    return str(task_id)


def _status(sdk: Any, client: Any, task_id: str) -> str:
    return str(client.show_migration_task(sdk.v2.ShowMigrationTaskRequest(task_id=task_id)).status)


def _messages(sdk: Any, client: Any, task_id: str) -> list[str]:
    logs = client.list_migration_task_logs(sdk.v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=100))
    return [f"{e.log_level} {e.log_code} {e.message}" for e in logs.migration_logs]


def _incremental(sdk: Any, client: Any, task_id: str) -> None:
    wait_for(lambda: _status(sdk, client, task_id) in ("INCRMIGEATING", "FAILED"), timeout=60)
    assert _status(sdk, client, task_id) == "INCRMIGEATING", _messages(sdk, client, task_id)


def _seed(source: RedisServer) -> None:
    p = source.client().pipeline(transaction=False)
    for i in range(500):
        p.set(f"k:{i}", i)
        p.hset(f"h:{i % 20}", f"f{i}", i)
    p.execute()


def _wait_equal(source: RedisServer, target: RedisServer) -> int:
    def equal() -> Any:
        result = compare_servers([source.client()], [target.client()])
        return result if result.ok else None

    return int(wait_for(equal, timeout=60).compared)


def _sizes_agree(sdk: Any, client: Any, task_id: str, source: RedisServer) -> bool:
    stats = client.show_migration_task_stats(sdk.v2.ShowMigrationTaskStatsRequest(task_id=task_id))
    size = str(source.client().dbsize())
    return bool(stats.source_dbsize == size and stats.target_dbsize == size)


def test_target_outage_under_the_service(service_factory: Any, sdk: Any, redis_factory: Any) -> None:
    live: LiveService = service_factory()
    creds = live.credentials()
    client = sdk.client(live.url, creds)
    source = redis_factory("f-src", password="src-pw", args=FAST)
    target = redis_factory("f-tgt", password="tgt-pw", args=AOF)
    _seed(source)
    task_id = _start(sdk, client, source, _register(live, creds, target))
    _incremental(sdk, client, task_id)
    counters = CounterWriter(source.port, password="src-pw")
    counters.start()
    try:
        wait_until_ops = counters.ops + 300
        wait_for(lambda: counters.ops >= wait_until_ops, timeout=60)
        down = time.monotonic()
        target.kill()
        wait_for(lambda: any("waiting for it: attempt 2" in m for m in _messages(sdk, client, task_id)),
                 timeout=60)
        assert _status(sdk, client, task_id) == "INCRMIGEATING"  # not FAILED: it waits
        during = counters.ops
        target.restart()
        up = time.monotonic()
        wait_for(lambda: any("is back after" in m for m in _messages(sdk, client, task_id)), timeout=60)
        more = counters.ops + 300
        wait_for(lambda: counters.ops >= more, timeout=60)
        writes = counters.stop()
        compared = _wait_equal(source, target)
        recovered = time.monotonic() - up
        lost, doubled = counters.lost_and_doubled(target.client())
    finally:
        counters.stop_event.set()
    assert (lost, doubled) == (0, 0)
    wait_for(lambda: _sizes_agree(sdk, client, task_id, source), timeout=30)
    client.stop_migration_task_sync(sdk.v2.StopMigrationTaskSyncRequest(task_id=task_id))
    assert _status(sdk, client, task_id) == "TERMINATED"
    fault_row(fault="target outage (service, SDK)", injected="target SIGKILL, restarted with AOF",
              outage_s=round(up - down, 1), load=f"{writes} INCR", incr_during_outage=during,
              status="INCRMIGEATING throughout", recover_s=round(recovered, 1), keys_compared=compared,
              mismatches=0, lost=lost, doubled=doubled)


def test_restart_while_the_source_is_down_keeps_retrying(
    service_factory: Any, sdk: Any, redis_factory: Any, tmp_path: Any
) -> None:
    """The probed defect: after a service restart, an auto task whose source was still down went
    FAILED; and after the resume the stats said source_dbsize/target_dbsize "0"."""
    settings = make_settings(tmp_path)
    live: LiveService = service_factory(settings)
    creds = live.credentials()
    client = sdk.client(live.url, creds)
    source = redis_factory("r-src", password="src-pw", args=[*FAST, *AOF])
    target = redis_factory("r-tgt", password="tgt-pw")
    _seed(source)
    task_id = _start(sdk, client, source, _register(live, creds, target))
    _incremental(sdk, client, task_id)
    _wait_equal(source, target)
    live.stop()
    source.kill()
    down = time.monotonic()
    again: LiveService = service_factory(settings)
    client = sdk.client(again.url, creds)

    def retries() -> int:
        return sum("source unreachable" in m for m in _messages(sdk, client, task_id))

    wait_for(lambda: retries() >= 2, timeout=60)
    assert _status(sdk, client, task_id) == "INCRMIGEATING", _messages(sdk, client, task_id)
    source.restart()
    up = time.monotonic()
    source.client().incr("after-restart")
    _incremental(sdk, client, task_id)
    compared = _wait_equal(source, target)
    recovered = time.monotonic() - up
    wait_for(lambda: _sizes_agree(sdk, client, task_id, source), timeout=30)
    client.stop_migration_task_sync(sdk.v2.StopMigrationTaskSyncRequest(task_id=task_id))
    assert _status(sdk, client, task_id) == "TERMINATED"
    fault_row(fault="service restart while the source is down", injected="service stopped, source SIGKILL",
              outage_s=round(up - down, 1), load="idle (+1 INCR after)",
              status="INCRMIGEATING while the source was down",
              recover_s=round(recovered, 1), keys_compared=compared, mismatches=0, lost=0, doubled=0)


def test_sync_stop_during_a_source_backoff_is_prompt(
    service_factory: Any, sdk: Any, redis_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probed defect: a sync-stop during the wait before reconnecting to the source waited the
    whole stop grace. Here both are 10 minutes: only a stop that ends the wait can return."""
    monkeypatch.setattr(sync, "BACKOFF_FIRST", 600.0)
    live: LiveService = service_factory(make_settings(tmp_path, stop_grace_seconds=600.0))
    creds = live.credentials()
    client = sdk.client(live.url, creds)
    source = redis_factory("s-src", password="src-pw", args=FAST)
    target = redis_factory("s-tgt", password="tgt-pw")
    _seed(source)
    task_id = _start(sdk, client, source, _register(live, creds, target))
    _incremental(sdk, client, task_id)
    source.kill()
    wait_for(lambda: any("reconnecting in 600 s" in m for m in _messages(sdk, client, task_id)), timeout=60)
    client.stop_migration_task_sync(sdk.v2.StopMigrationTaskSyncRequest(task_id=task_id))
    assert _status(sdk, client, task_id) == "TERMINATED"
