"""Endpoints the service reaches through the engine's one connection stack: TLS (``enable_ssl``,
``ssl_verify``) and ACL users (``access_user``) for instances and task endpoints, and numbers
that are ASCII digits only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Creds, LiveService, signed, wait_for
from support.compare import compare_servers
from support.servers import RedisServer, free_port
from support.tls import self_signed


def acl_user(name: str, password: str) -> list[str]:
    return ["--user", name, "on", f">{password}", "~*", "&*", "+@all"]


@pytest.fixture
def env(service_factory: Any, sdk: Any, redis_factory: Any, tmp_path: Path) -> Any:
    live: LiveService = service_factory()
    creds = live.credentials()
    cert, key = self_signed(tmp_path / "tls")
    tls_port = free_port()
    # The source: TLS (self-signed) and an ACL user; its default user has another password.
    source: RedisServer = redis_factory(
        "tls-src",
        password="default-pw",
        args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
              "--tls-auth-clients", "no", *acl_user("app", "app-pw")],
    )
    target: RedisServer = redis_factory("acl-tgt", password="default-pw", args=acl_user("writer", "w-pw"))
    return live, creds, sdk.client(live.url, creds), source, tls_port, target


def register(live: LiveService, creds: Creds, **body: Any) -> Any:
    path = f"/v2/{creds.project_id}/instances"
    return signed(live, creds, "POST", path, json_body={"name": "inst", **body})


def new_online_task(sdk: Any, client: Any, name: str) -> str:
    """An online task waiting for its configuration (RUNNING)."""
    v2 = sdk.v2
    body = v2.CreateOnlineMigrationTaskBody(name=name, vpc_id="v", subnet_id="s", security_group_id="g")
    created = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(body=body))
    task_id = str(created.instance_id)
    show = v2.ShowMigrationTaskRequest(task_id=task_id)
    wait_for(lambda: client.show_migration_task(show).status == "RUNNING")
    return task_id


def test_instances_over_tls_and_as_acl_users(env: Any, sdk: Any) -> None:
    live, creds, client, source, tls_port, target = env
    v2 = sdk.v2
    tls = {"addrs": f"127.0.0.1:{tls_port}", "access_user": "app", "password": "app-pw"}
    r = register(live, creds, **tls, enable_ssl=True, ssl_verify=False)
    assert r.status_code == 200, r.text
    instance_id = r.json()["instance_id"]
    # A backup takes the instance's RDB over replication: TLS and the ACL user on that path too.
    source.client().set("backed-up", "1")
    backup_id = client.copy_instance(
        v2.CopyInstanceRequest(instance_id=instance_id, body=v2.BackupInstanceBody(remark="tls"))
    ).backup_id

    def finished() -> Any:
        rows = client.list_backup_records(v2.ListBackupRecordsRequest(instance_id=instance_id))
        row = next((b for b in rows.backup_record_response if b.backup_id == backup_id), None)
        return row if row is not None and row.status in ("succeed", "failed") else None

    record = wait_for(finished, timeout=30)
    assert record.status == "succeed" and record.size > 0, record
    shown = client.show_instance(sdk.v2.ShowInstanceRequest(instance_id=instance_id))
    body = shown.to_json_object()
    assert (body["enable_ssl"], body["ssl_verify"], body["access_user"]) == (True, False, "app")
    assert body["no_password_access"] == "false" and "app-pw" not in shown.raw_content.decode()
    assert body["port"] == tls_port and body["engine_version"].startswith("7")
    refused = [
        # The certificate is self-signed: verified (the default), it is refused.
        ({**tls, "enable_ssl": True}, "DCS.4063"),
        # Plain RESP to the TLS port: nothing a Redis client understands answers.
        (tls, "DCS.4063"),
        ({**tls, "enable_ssl": True, "ssl_verify": False, "password": "wrong"}, "DCS.4080"),
        ({**tls, "enable_ssl": True, "ssl_verify": False, "access_user": "nobody"}, "DCS.4080"),
        # The ACL user's password is not the default user's.
        ({"addrs": f"127.0.0.1:{target.port}", "password": "w-pw"}, "DCS.4080"),
    ]
    for fields, code in refused:
        r = register(live, creds, **fields)
        assert (r.status_code, r.json()["error_code"]) == (400, code), (fields, r.text)
        assert "pw" not in r.json()["error_msg"].replace("password", ""), r.text
    r = register(live, creds, addrs=f"127.0.0.1:{target.port}", access_user="writer", password="w-pw")
    assert r.status_code == 200, r.text
    listed = client.list_instances(sdk.v2.ListInstancesRequest()).to_json_object()["instances"]
    assert sorted((i["port"], i["enable_ssl"], i["access_user"]) for i in listed) == sorted(
        [(tls_port, True, "app"), (target.port, False, "writer")]
    )


def test_online_migration_from_a_tls_acl_source_to_an_acl_target(env: Any, sdk: Any) -> None:
    live, creds, client, source, tls_port, target = env
    v2 = sdk.v2
    src = source.client()
    for i in range(200):
        src.set(f"k:{i}", i)
    src.hset("h", mapping={"a": "1", "b": "2"})
    src.set("ttl", "x", px=600_000)
    r = register(live, creds, addrs=f"127.0.0.1:{target.port}", access_user="writer", password="w-pw")
    assert r.status_code == 200, r.text
    target_id = r.json()["instance_id"]
    task_id = new_online_task(sdk, client, "tls-acl")
    # The extension fields ride in the SDK's own body (raw: the SDK model does not know them).
    configure = {
        "migration_method": "full_amount_migration",
        "resume_mode": "auto",
        "source_instance": {"addrs": f"127.0.0.1:{tls_port}", "password": "app-pw", "access_user": "app",
                            "enable_ssl": True, "ssl_verify": False},
        "target_instance": {"id": target_id},
    }
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/{task_id}/task", json_body=configure)
    assert r.status_code == 200 and r.json()["status"] == "FULLMIGRATING", r.text

    def status() -> str:
        return str(client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    wait_for(lambda: status() in ("SUCCESS", "FAILED"), timeout=90)
    detail = client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))
    assert status() == "SUCCESS", detail.to_json_object().get("error_message")
    result = compare_servers([src], [target.client()])
    assert result.ok and result.compared == 202, result.summary()
    shown = detail.to_json_object()
    assert shown["source_instance"]["enable_ssl"] is True and shown["source_instance"]["access_user"] == "app"
    assert shown["source_instance"]["ssl_verify"] is False
    assert shown["target_instance"]["access_user"] == "writer" and not shown["target_instance"]["enable_ssl"]
    raw = detail.raw_content.decode()
    assert "app-pw" not in raw and "w-pw" not in raw


def test_numbers_are_ascii_digits_only(env: Any, sdk: Any) -> None:
    live, creds, client, source, _tls_port, _target = env
    v2 = sdk.v2
    pid = creds.project_id
    # "٦٣٧٩" passes str.isdigit() and int() reads it as 6379: it must never reach that port.
    for addrs in ("127.0.0.1:٦٣٧٩", "127.0.0.1:²", "::1:6379", "127.0.0.1:0"):
        r = register(live, creds, addrs=addrs)
        assert (r.status_code, r.json()["error_code"]) == (400, "DCS.4063"), (addrs, r.text)
        assert "addrs" in r.json()["error_msg"]
    task_id = new_online_task(sdk, client, "digits")
    good = {"addrs": f"127.0.0.1:{source.port}", "password": "default-pw"}
    base = {"migration_method": "full_amount_migration", "resume_mode": "auto",
            "source_instance": good, "target_instance": good}
    cases = [
        ("bandwidth_limit_mb", {**base, "bandwidth_limit_mb": "²"}),
        ("bandwidth_limit_mb", {**base, "bandwidth_limit_mb": "\u0661\u0660"}),
        ("bandwidth_limit_mb", {**base, "bandwidth_limit_mb": -5}),
        ("source_instance.db", {**base, "source_instance": {**good, "db": "²"}}),
        ("source_instance.db", {**base, "source_instance": {**good, "db": "\u0663"}}),
        ("source_instance.addrs", {**base, "source_instance": {"addrs": "127.0.0.1:٦٣٧٩"}}),
    ]
    for field, body in cases:
        r = signed(live, creds, "POST", f"/v2/{pid}/migration/{task_id}/task", json_body=body)
        assert (r.status_code, r.json()["error_code"]) == (400, "DCS.4063"), (body, r.text)
        assert field in r.json()["error_msg"], r.text
    assert client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status == "RUNNING"
