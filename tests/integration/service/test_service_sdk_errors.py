"""Error shapes on the wire: unknown ids, wrong states, auth failures, other projects, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Creds, FakeExecutor, LiveService, signed

OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def env(service_factory: Any, fake_executor: FakeExecutor, sdk: Any) -> Any:
    live: LiveService = service_factory(executor=fake_executor)
    creds = live.credentials()
    return live, creds, sdk.client(live.url, creds)


def raises(sdk: Any, fn: Any, *args: Any) -> Any:
    with pytest.raises(sdk.ClientRequestException) as exc:
        fn(*args)
    return exc.value


def test_unknown_task_ids_are_dcs_4133_everywhere(env: Any, sdk: Any) -> None:
    _live, _creds, client = env
    v2 = sdk.v2
    tid = "00000000-0000-0000-0000-000000000000"
    calls = [
        (client.show_migration_task, v2.ShowMigrationTaskRequest(task_id=tid)),
        (client.show_migration_task_stats, v2.ShowMigrationTaskStatsRequest(task_id=tid)),
        (client.list_migration_task_logs, v2.ListMigrationTaskLogsRequest(task_id=tid)),
        (client.stop_migration_task, v2.StopMigrationTaskRequest(task_id=tid)),
        (client.stop_migration_task_sync, v2.StopMigrationTaskSyncRequest(task_id=tid)),
        (
            client.update_migration_task,
            v2.UpdateMigrationTaskRequest(
                task_id=tid, body=v2.MigrationUpdateRequestEntity(resume_mode="auto")
            ),
        ),
        (client.rollback_exchange_instance_ip, v2.RollbackExchangeInstanceIpRequest(task_id=tid)),
        (
            client.exchange_instance_ip,
            v2.ExchangeInstanceIpRequest(task_id=tid, body=v2.IpExchangeRequest(exchanged_ip=["1.2.3.4"])),
        ),
        (
            client.delete_migration_task,
            v2.DeleteMigrationTaskRequest(body=v2.DeleteMigrateTaskRequest(task_id_list=[tid])),
        ),
        (
            client.set_online_migration_task,
            v2.SetOnlineMigrationTaskRequest(
                task_id=tid,
                body=(
                    v2.SetOnlineMigrationTaskBody(
                        migration_method="full_amount_migration",
                        resume_mode="auto",
                        source_instance=v2.ConfigMigrationInstanceBody(addrs="127.0.0.1:1"),
                        target_instance=v2.ConfigMigrationInstanceBody(addrs="127.0.0.1:2"),
                    )
                ),
            ),
        ),
    ]
    for fn, req in calls:
        exc = raises(sdk, fn, req)
        assert (exc.status_code, exc.error_code) == (400, "DCS.4133"), fn.__name__
        assert exc.error_msg == "The migration task does not exist." and exc.request_id
    stopped = client.batch_stop_migration_tasks(
        v2.BatchStopMigrationTasksRequest(body=v2.BatchStopMigrationTasksBody(migration_tasks=[tid]))
    )
    item = stopped.to_json_object()["migration_tasks"][0]
    assert item == {
        "task_id": tid,
        "result": "failed",
        "error_code": "DCS.4133",
        "error_msg": "The migration task does not exist.",
    }


def test_signature_failures_are_401(env: Any, sdk: Any) -> None:
    live, creds, _client = env
    v2 = sdk.v2
    bad = sdk.client(live.url, Creds(creds.project_id, creds.ak, creds.sk + "x"))
    exc = raises(sdk, bad.list_migration_task, v2.ListMigrationTaskRequest())
    assert (exc.status_code, exc.error_code) == (401, "APIG.0301") and "signature" in exc.error_msg
    assert exc.request_id
    unknown = sdk.client(live.url, Creds(creds.project_id, "NOSUCHAK000000000000", creds.sk))
    assert raises(sdk, unknown.list_migration_task, v2.ListMigrationTaskRequest()).status_code == 401
    client = sdk.client(live.url, creds)
    invoker = client.list_migration_task_invoker(v2.ListMigrationTaskRequest()).add_header(
        "X-Sdk-Date", "20200101T000000Z"
    )
    exc = raises(sdk, invoker.invoke)
    assert (exc.status_code, exc.error_code) == (401, "APIG.0301") and "signature expired" in exc.error_msg
    r = httpx.get(f"{live.url}/v2/{creds.project_id}/migration-tasks", timeout=60)
    assert r.status_code == 401 and r.json()["error_code"] == "APIG.0301" and r.headers["x-request-id"]
    assert r.headers["content-type"] == "application/json;charset=UTF-8"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    # A tampered body after signing.
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{creds.project_id}/migration-task/batch-stop",
        json_body={"migration_tasks": ["a"]},
    )
    assert r.status_code == 200
    hdrs = dict(r.request.headers)
    tampered = httpx.post(str(r.request.url), content=b'{"migration_tasks": ["b"]}', headers=hdrs, timeout=60)
    assert tampered.status_code == 401 and tampered.json()["error_code"] == "APIG.0301"


def test_hmac_sm3_signatures_are_accepted(env: Any, sdk: Any) -> None:
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkcore.signer.algorithm import SigningAlgorithm

    live, creds, _client = env
    config = HttpConfig.get_default_config()
    config.signing_algorithm = SigningAlgorithm.HMAC_SM3
    v2 = sdk.v2
    client = (
        v2.DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(sdk.BasicCredentials(creds.ak, creds.sk, creds.project_id))
        .with_endpoints([live.url])
        .build()
    )
    assert client.list_migration_task(v2.ListMigrationTaskRequest()).count == 0
    bad = (
        v2.DcsClient.new_builder()
        .with_http_config(config)
        .with_credentials(sdk.BasicCredentials(creds.ak, creds.sk + "x", creds.project_id))
        .with_endpoints([live.url])
        .build()
    )
    assert raises(sdk, bad.list_migration_task, v2.ListMigrationTaskRequest()).error_code == "APIG.0301"


def test_projects_are_isolated(env: Any, sdk: Any) -> None:
    live, creds, client = env
    v2 = sdk.v2
    task_id = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(
                name="project-a", vpc_id="v", subnet_id="s", security_group_id="g"
            )
        )
    ).instance_id
    other = live.credentials(OTHER_PROJECT)
    other_client = sdk.client(live.url, other)
    exc = raises(sdk, other_client.show_migration_task, v2.ShowMigrationTaskRequest(task_id=task_id))
    assert (exc.status_code, exc.error_code) == (400, "DCS.4133")
    assert other_client.list_migration_task(v2.ListMigrationTaskRequest()).count == 0
    # B's keys on A's project path: 403, whether the task exists or not.
    crossed = sdk.client(live.url, Creds(creds.project_id, other.ak, other.sk))
    for tid in (task_id, "unknown"):
        exc = raises(sdk, crossed.show_migration_task, v2.ShowMigrationTaskRequest(task_id=tid))
        assert (exc.status_code, exc.error_code) == (403, "DCS.1004")
    # X-Project-Id (signed) disagreeing with the path.
    crossed_header = Creds(OTHER_PROJECT, creds.ak, creds.sk)
    r = signed(live, crossed_header, "GET", f"/v2/{creds.project_id}/migration-tasks")
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4002"
    # No project id at all: the SDK sends the literal {project_id}.
    nopid = (
        v2.DcsClient.new_builder()
        .with_credentials(sdk.BasicCredentials(creds.ak, creds.sk))
        .with_endpoints([live.url])
        .build()
    )
    exc = raises(sdk, nopid.list_migration_task, v2.ListMigrationTaskRequest())
    assert (exc.status_code, exc.error_code) == (400, "DCS.4002")


def test_validation_errors_are_dcs_400s(env: Any, sdk: Any) -> None:
    live, creds, client = env
    v2 = sdk.v2
    pid = creds.project_id
    exc = raises(sdk, client.create_migration_task, v2.CreateMigrationTaskRequest())
    assert (exc.status_code, exc.error_code) == (400, "DCS.4004")
    exc = raises(
        sdk,
        client.create_migration_task,
        v2.CreateMigrationTaskRequest(
            body=v2.CreateMigrationTaskBody(task_name="abc", migration_type="backupfile_import")
        ),
    )
    assert exc.error_code == "DCS.4063" and "task_name" in exc.error_msg
    exc = raises(
        sdk,
        client.create_migration_task,
        v2.CreateMigrationTaskRequest(
            body=v2.CreateMigrationTaskBody(
                task_name="import-1",
                migration_type="backupfile_import",
                migration_method="incremental_migration",
                target_instance=v2.TargetInstanceBody(id="x"),
            )
        ),
    )
    assert exc.error_code == "DCS.4063" and "migration_method" in exc.error_msg
    for query in ("limit=0", "limit=1001", "offset=-1", "limit=abc"):
        r = signed(live, creds, "GET", f"/v2/{pid}/migration-tasks", query=query)
        assert r.status_code == 400 and r.json()["error_code"] == "DCS.4063", query
        assert set(r.json()) == {"error_code", "error_msg", "error_ext_msg"}
    r = signed(live, creds, "POST", f"/v2/{pid}/migration/instance", raw=b"{not json")
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4005"
    r = signed(live, creds, "POST", f"/v2/{pid}/migration/instance", raw=b"[1, 2]")
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4005"
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{pid}/migration-task/batch-stop",
        json_body={"migration_tasks": [f"t{i}" for i in range(51)]},
    )
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4063"
    exc = raises(
        sdk, client.list_migration_task_logs, v2.ListMigrationTaskLogsRequest(task_id="x", log_level="LOUD")
    )
    assert exc.error_code in ("DCS.4063", "DCS.4133")
    r = httpx.get(f"{live.url}/v2/{pid}/no-such-thing", timeout=60)
    assert r.status_code == 404 and r.json()["error_code"] == "DCS.4001" and r.headers["x-request-id"]
    r = httpx.get(f"{live.url}/nothing/here", timeout=60)
    assert r.status_code == 404 and r.json()["error_code"] == "DCS.4001" and r.headers["x-request-id"]
    r = signed(live, creds, "DELETE", f"/v2/{pid}/migration-tasks")
    assert r.status_code == 405 and r.json()["error_code"] == "DCS.5001"


def test_x_auth_token(env: Any, sdk: Any) -> None:
    live, creds, _client = env
    v2 = sdk.v2
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/auth/tokens")
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    ok = httpx.get(f"{live.url}/v2/{creds.project_id}/migration-tasks", headers={"X-Auth-Token": token},
                   timeout=60)
    assert ok.status_code == 200 and ok.json() == {"count": 0, "migration_tasks": []}
    other = httpx.get(f"{live.url}/v2/{OTHER_PROJECT}/migration-tasks", headers={"X-Auth-Token": token},
                      timeout=60)
    assert other.status_code == 403 and other.json()["error_code"] == "DCS.1004"
    forged = httpx.get(
        f"{live.url}/v2/{creds.project_id}/migration-tasks", headers={"X-Auth-Token": token[:-4]}
    , timeout=60)
    assert forged.status_code == 401 and "decrypt token fail" in forged.json()["error_msg"]
    # The SDK can carry the token too (it still signs the request).
    client = sdk.client(live.url, creds)
    client.preset_headers = {"X-Auth-Token": token}
    assert client.list_migration_task(v2.ListMigrationTaskRequest()).count == 0


def test_instances_and_backups(env: Any, sdk: Any, redis_factory: Any) -> None:
    live, creds, client = env
    v2 = sdk.v2
    pid = creds.project_id
    server = redis_factory("inv", password="pw-1")
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{pid}/instances",
        json_body={"name": "cache-1", "addrs": f"127.0.0.1:{server.port}", "password": "wrong"},
    )
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4080"
    r = signed(
        live, creds, "POST", f"/v2/{pid}/instances", json_body={"name": "cache-1", "addrs": "127.0.0.1:1"}
    )
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4063"
    r = signed(
        live,
        creds,
        "POST",
        f"/v2/{pid}/instances",
        json_body={
            "name": "cache-1",
            "addrs": f"127.0.0.1:{server.port}",
            "password": "pw-1",
            "description": "a cache",
        },
    )
    assert r.status_code == 200 and set(r.json()) == {"instance_id", "name"}
    iid = r.json()["instance_id"]
    listed = client.list_instances(v2.ListInstancesRequest())
    assert listed.instance_num == 1 and listed.instances[0].instance_id == iid
    assert listed.instances[0].port == server.port and listed.instances[0].engine == "Redis"
    shown = client.show_instance(v2.ShowInstanceRequest(instance_id=iid))
    assert shown.name == "cache-1" and shown.engine_version.startswith(("6", "7", "8"))
    assert "pw-1" not in shown.raw_content.decode() and shown.no_password_access == "false"
    backups = client.list_backup_records(v2.ListBackupRecordsRequest(instance_id=iid))
    assert backups.status_code == 200 and backups.to_json_object() == {
        "total_num": 0,
        "backup_record_response": [],
    }
    exc = raises(sdk, client.list_backup_records, v2.ListBackupRecordsRequest(instance_id="nope"))
    assert (exc.status_code, exc.error_code) == (404, "DCS.3022")
    exc = raises(
        sdk, client.list_backup_records, v2.ListBackupRecordsRequest(instance_id=iid, begin_time="2024")
    )
    assert exc.error_code == "DCS.4063"
    other = sdk.client(live.url, live.credentials(OTHER_PROJECT))
    exc = raises(sdk, other.show_instance, v2.ShowInstanceRequest(instance_id=iid))
    assert (exc.status_code, exc.error_code) == (404, "DCS.3022")
    r = signed(live, creds, "DELETE", f"/v2/{pid}/instances/{iid}")
    assert r.status_code == 204 and r.headers["x-request-id"]
    exc = raises(sdk, client.show_instance, v2.ShowInstanceRequest(instance_id=iid))
    assert exc.error_code == "DCS.3022"
    exc = raises(sdk, client.show_job_info, v2.ShowJobInfoRequest(job_id="nope"))
    assert exc.status_code == 400
