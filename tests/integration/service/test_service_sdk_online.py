"""The official SDK drives an online migration task through its whole life (engine faked)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from conftest import FakeExecutor, LiveService, signed, wait_for


@pytest.fixture
def env(service_factory: Any, fake_executor: FakeExecutor, sdk: Any, redis_factory: Any) -> Any:
    live: LiveService = service_factory(executor=fake_executor)
    creds = live.credentials()
    source, target = redis_factory("src"), redis_factory("tgt", password="tgt-secret")
    client = sdk.client(live.url, creds)
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={"name": "target-1", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-secret"},
    )
    assert r.status_code == 200, r.text
    return live, creds, client, source, target, r.json()["instance_id"]


def show(sdk: Any, client: Any, task_id: str) -> Any:
    return client.show_migration_task(sdk.v2.ShowMigrationTaskRequest(task_id=task_id))


def status_of(sdk: Any, client: Any, task_id: str) -> str:
    return str(show(sdk, client, task_id).status)


def test_online_task_lifecycle(env: Any, sdk: Any) -> None:
    _live, _creds, client, source, _target, target_id = env
    v2 = sdk.v2
    created = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(
                name="mig-online",
                description="d",
                vpc_id="vpc-1",
                subnet_id="subnet-1",
                security_group_id="sg-1",
            )
        )
    )
    assert created.status_code == 200
    raw = created.to_json_object()
    task_id, job_id = created.instance_id, raw["job_id"]
    assert set(raw) == {"instance_id", "job_id"}
    job = wait_for(
        lambda: (j := client.show_job_info(v2.ShowJobInfoRequest(job_id=job_id))).status == "SUCCESS" and j
    )
    assert job.job_type and job.begin_time.isdigit() and job.end_time.isdigit()
    assert status_of(sdk, client, task_id) == "RUNNING"

    body = v2.SetOnlineMigrationTaskBody(
        migration_method="incremental_migration",
        resume_mode="auto",
        bandwidth_limit_mb="100",
        source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
        target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
    )
    res = client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(task_id=task_id, body=body))
    assert (res.id, res.name, res.status) == (task_id, "mig-online", "FULLMIGRATING")
    wait_for(lambda: status_of(sdk, client, task_id) == "INCRMIGEATING")

    detail = show(sdk, client, task_id)
    d = detail.to_json_object()
    for key in (
        "task_id",
        "task_name",
        "description",
        "status",
        "migration_type",
        "migration_method",
        "ecs_tenant_private_ip",
        "network_type",
        "source_instance",
        "target_instance",
        "created_at",
        "updated_at",
        "released_at",
        "version",
        "resume_mode",
        "supported_features",
        "tenant_vpc_id",
        "tenant_subnet_id",
        "tenant_security_group_id",
        "bandwidth_limit_mb",
        "task_status",
        "backup_files",
    ):
        assert key in d, key
    assert "password" not in d["source_instance"] and "password" not in d["target_instance"]
    assert "tgt-secret" not in detail.raw_content.decode()
    assert d["target_instance"]["id"] == target_id and d["target_instance"]["name"] == "target-1"
    assert d["bandwidth_limit_mb"] == "100" and d["tenant_vpc_id"] == "vpc-1"
    assert d["created_at"].endswith("Z") and len(d["created_at"]) == 24

    stats = client.show_migration_task_stats(v2.ShowMigrationTaskStatsRequest(task_id=task_id))
    sj = stats.to_json_object()
    assert sj["is_migrating"] is True and sj["offset"] == "50" and sj["full_migration_progress"] == "100"
    assert all(isinstance(sj[k], str) for k in sj if k != "is_migrating")

    logs = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id))
    codes = [entry.log_code for entry in logs.migration_logs]
    assert "migration.incr.start" in codes and "migration.full.start" in codes
    assert logs.log_num >= len(logs.migration_logs) >= 3
    errors = client.list_migration_task_logs(
        v2.ListMigrationTaskLogsRequest(task_id=task_id, log_level="ERROR")
    )
    assert errors.log_num == 0 and errors.migration_logs == []
    page = client.list_migration_task_logs(
        v2.ListMigrationTaskLogsRequest(task_id=task_id, offset=1, limit=1)
    )
    assert len(page.migration_logs) == 1 and page.log_num == logs.log_num

    with pytest.raises(sdk.ClientRequestException) as exc:  # active tasks cannot be deleted
        client.delete_migration_task(
            v2.DeleteMigrationTaskRequest(body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id]))
        )
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4957")
    with pytest.raises(sdk.ClientRequestException) as exc:  # nor re-configured while migrating
        client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(task_id=task_id, body=body))
    assert exc.value.error_code == "DCS.4957" and exc.value.request_id

    stopped = client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
    assert stopped.status == "TERMINATING" and stopped.task_id == task_id
    assert "password" not in stopped.to_json_object()["target_instance"]
    wait_for(lambda: status_of(sdk, client, task_id) == "TERMINATED")
    again = client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
    assert again.status == "TERMINATED"

    restart = client.batch_restart_online_migration_tasks(
        v2.BatchRestartOnlineMigrationTasksRequest(
            body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[task_id, "nope"])
        )
    )
    items = {r.task_id: r for r in restart.migration_tasks}
    assert items[task_id].result == "success" and items["nope"].result == "failed"
    assert items["nope"].error_code == "DCS.4133"
    wait_for(lambda: status_of(sdk, client, task_id) == "INCRMIGEATING")
    sync = client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=task_id))
    assert sync.status_code == 204 and sync.raw_content in (b"", None)
    assert status_of(sdk, client, task_id) == "TERMINATED"

    upd = client.update_migration_task(
        v2.UpdateMigrationTaskRequest(
            task_id=task_id, body=v2.MigrationUpdateRequestEntity(resume_mode="manual")
        )
    )
    assert upd.status_code == 204 and upd.body is None
    assert show(sdk, client, task_id).resume_mode == "manual"

    for op in ("exchange", "rollback"):
        with pytest.raises(sdk.ClientRequestException) as exc:
            if op == "exchange":
                client.exchange_instance_ip(
                    v2.ExchangeInstanceIpRequest(
                        task_id=task_id,
                        body=v2.IpExchangeRequest(exchanged_ip=["10.0.0.1"], is_exchange_domain=False),
                    )
                )
            else:
                client.rollback_exchange_instance_ip(v2.RollbackExchangeInstanceIpRequest(task_id=task_id))
        # A stopped task that was never exchanged: neither switch is allowed (spec §5.4).
        assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4957")
        assert "TERMINATED" in exc.value.error_msg

    deleted = client.delete_migration_task(
        v2.DeleteMigrationTaskRequest(body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id]))
    )
    assert deleted.task_id_list == [task_id]
    with pytest.raises(sdk.ClientRequestException) as exc:
        show(sdk, client, task_id)
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4133")
    listed = client.list_migration_task(v2.ListMigrationTaskRequest())
    assert task_id not in [t.task_id for t in listed.migration_tasks]


def test_list_pagination_and_name_filter(env: Any, sdk: Any) -> None:
    _live, _creds, client, *_ = env
    v2 = sdk.v2
    ids = []
    for i in range(5):
        res = client.create_online_migration_task(
            v2.CreateOnlineMigrationTaskRequest(
                body=v2.CreateOnlineMigrationTaskBody(
                    name=f"{'alpha' if i < 3 else 'beta'}-{i}",
                    vpc_id="v",
                    subnet_id="s",
                    security_group_id="g",
                )
            )
        )
        ids.append(res.instance_id)
    everything = client.list_migration_task(v2.ListMigrationTaskRequest())
    assert everything.count == 5 and len(everything.migration_tasks) == 5
    first = client.list_migration_task(v2.ListMigrationTaskRequest(offset=0, limit=2))
    rest = client.list_migration_task(v2.ListMigrationTaskRequest(offset=2, limit=10))
    assert first.count == 5 and len(first.migration_tasks) == 2 and len(rest.migration_tasks) == 3
    assert {t.task_id for t in first.migration_tasks + rest.migration_tasks} == set(ids)
    alpha = client.list_migration_task(v2.ListMigrationTaskRequest(name="lpha"))
    assert alpha.count == 3 and all(t.task_name.startswith("alpha") for t in alpha.migration_tasks)
    item = alpha.to_json_object()["migration_tasks"][0]
    assert {
        "task_id",
        "task_name",
        "status",
        "migration_type",
        "created_at",
        "data_source",
        "target_instance_addrs",
        "supported_features",
        "resume_mode",
        "version",
    } <= set(item)
    assert client.list_migration_task(v2.ListMigrationTaskRequest(name="zzz")).count == 0


def test_stop_in_wrong_state_and_failed_task(env: Any, sdk: Any, fake_executor: FakeExecutor) -> None:
    _live, _creds, client, source, _target, target_id = env
    v2 = sdk.v2
    res = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(
                name="will-fail", vpc_id="v", subnet_id="s", security_group_id="g"
            )
        )
    )
    task_id = res.instance_id
    with pytest.raises(sdk.ClientRequestException) as exc:
        client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
    assert exc.value.error_code == "DCS.4957"
    with pytest.raises(sdk.ClientRequestException) as exc:  # nothing to restart yet
        client.batch_restart_online_migration_tasks(
            v2.BatchRestartOnlineMigrationTasksRequest(
                body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[])
            )
        )
    assert exc.value.error_code == "DCS.4063"
    fake_executor.fail_with = "source went away: connection reset"
    client.set_online_migration_task(
        v2.SetOnlineMigrationTaskRequest(
            task_id=task_id,
            body=(
                v2.SetOnlineMigrationTaskBody(
                    migration_method="full_amount_migration",
                    resume_mode="manual",
                    source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
                    target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
                )
            ),
        )
    )
    wait_for(lambda: status_of(sdk, client, task_id) == "FAILED")
    errors = client.list_migration_task_logs(
        v2.ListMigrationTaskLogsRequest(task_id=task_id, log_level="ERROR")
    )
    assert errors.log_num >= 1
    assert any(e.log_code == "migration.error.migration" for e in errors.migration_logs)
    listed = client.list_migration_task(v2.ListMigrationTaskRequest(name="will-fail")).migration_tasks[0]
    assert listed.error_message == "source went away: connection reset"
    stopped = client.batch_stop_migration_tasks(
        v2.BatchStopMigrationTasksRequest(body=v2.BatchStopMigrationTasksBody(migration_tasks=[task_id]))
    )
    assert (
        stopped.migration_tasks[0].result == "failed" and stopped.migration_tasks[0].error_code == "DCS.4957"
    )

    fake_executor.fail_with = None
    client.batch_restart_online_migration_tasks(
        v2.BatchRestartOnlineMigrationTasksRequest(
            body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[task_id])
        )
    )
    wait_for(lambda: status_of(sdk, client, task_id) == "SUCCESS")
    stats = client.show_migration_task_stats(v2.ShowMigrationTaskStatsRequest(task_id=task_id))
    assert (
        stats.is_migrating is False and stats.full_migration_progress == "100" and stats.target_dbsize == "10"
    )




def test_configure_while_the_task_is_still_creating(env: Any, sdk: Any, monkeypatch: Any) -> None:
    """set_online right after create_online: CREATING (an instant here) ends while the request
    checks its endpoints; the task is configured all the same (it was DCS.4957 one run in ~5)."""
    from cachemigrate.service import endpoints

    live, _creds, client, source, _target, target_id = env
    v2 = sdk.v2
    provision, check = live.services.runner.provision, endpoints.check
    configuring, provisioned = threading.Event(), asyncio.Event()

    async def held(task_id: str, job_id: str) -> None:  # CREATING -> RUNNING once configuring
        await asyncio.to_thread(configuring.wait, 30)
        await provision(task_id, job_id)
        provisioned.set()

    async def check_late(field: str, endpoint: Any, **kw: Any) -> Any:
        configuring.set()
        await asyncio.wait_for(provisioned.wait(), 30)
        return await check(field, endpoint, **kw)

    monkeypatch.setattr(live.services.runner, "provision", held)
    monkeypatch.setattr(endpoints, "check", check_late)
    ids = {"vpc_id": "v", "subnet_id": "s", "security_group_id": "g"}
    created = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(body=v2.CreateOnlineMigrationTaskBody(name="early", **ids))
    )
    task_id = created.instance_id
    assert status_of(sdk, client, task_id) == "CREATING"
    body = v2.SetOnlineMigrationTaskBody(
        migration_method="full_amount_migration",
        resume_mode="auto",
        source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
        target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
    )
    res = client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(task_id=task_id, body=body))
    assert res.status == "FULLMIGRATING" and provisioned.is_set()
    wait_for(lambda: status_of(sdk, client, task_id) == "SUCCESS")
