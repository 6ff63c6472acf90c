"""Per-project quotas (service/quotas.py): migration tasks, registered instances and backups; one
more than the quota is 400 DCS.4039, another project is not affected, and removing one frees a
place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Creds, FakeExecutor, LiveService, make_settings, signed, wait_for
from support.servers import RedisServer

PID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
FAST = ["--repl-diskless-sync-delay", "0"]


@pytest.fixture
def live(
    service_factory: Callable[..., LiveService], tmp_path: Path, fake_executor: FakeExecutor
) -> LiveService:
    settings = make_settings(
        tmp_path, max_tasks_per_project=2, max_instances_per_project=2, max_backups_per_project=2
    )
    return service_factory(settings, executor=fake_executor)


def assert_quota(r: httpx.Response, what: str) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "DCS.4039", r.text
    assert f"The {what} quota of the project is used up (2)" in r.json()["error_msg"]


def online_task(live: LiveService, creds: Creds, name: str) -> httpx.Response:
    body = {"name": name, "vpc_id": "vpc", "subnet_id": "subnet", "security_group_id": "sg"}
    return signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/instance", json_body=body)


def test_migration_task_quota(live: LiveService) -> None:
    creds, other = live.credentials(PID), live.credentials(OTHER)
    ids = []
    for name in ("task-1", "task-2"):
        r = online_task(live, creds, name)
        assert r.status_code == 200, r.text
        ids.append(r.json()["instance_id"])
    assert_quota(online_task(live, creds, "task-3"), "migration task")
    assert online_task(live, other, "task-3").status_code == 200  # per project

    def status(task_id: str) -> str:
        r = signed(live, creds, "GET", f"/v2/{PID}/migration-task/{task_id}")
        return str(r.json()["status"])

    wait_for(lambda: status(ids[0]) == "RUNNING")
    body = {"task_id_list": [ids[0]]}
    r = signed(live, creds, "DELETE", f"/v2/{PID}/migration-tasks/delete", json_body=body)
    assert r.status_code == 200, r.text
    assert online_task(live, creds, "task-3").status_code == 200  # a deleted task frees its place


def register(live: LiveService, creds: Creds, name: str, server: RedisServer) -> httpx.Response:
    body = {"name": name, "addrs": f"127.0.0.1:{server.port}"}
    return signed(live, creds, "POST", f"/v2/{creds.project_id}/instances", json_body=body)


def test_instance_quota(live: LiveService, redis_factory: Callable[..., RedisServer]) -> None:
    creds, other = live.credentials(PID), live.credentials(OTHER)
    server = redis_factory("inst")
    first = register(live, creds, "inst-1", server)
    assert first.status_code == 200, first.text
    assert register(live, creds, "inst-2", server).status_code == 200
    assert_quota(register(live, creds, "inst-3", server), "instance")
    assert register(live, other, "inst-3", server).status_code == 200
    r = signed(live, creds, "DELETE", f"/v2/{PID}/instances/{first.json()['instance_id']}")
    assert r.status_code == 204, r.text
    assert register(live, creds, "inst-3", server).status_code == 200


def take_backup(live: LiveService, creds: Creds, instance_id: str) -> httpx.Response:
    path = f"/v2/{creds.project_id}/instances/{instance_id}/backups"
    return signed(live, creds, "POST", path, json_body={})


def finished(live: LiveService, creds: Creds, instance_id: str, backup_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        path = f"/v2/{creds.project_id}/instances/{instance_id}/backups"
        r = signed(live, creds, "GET", path, query="limit=1000")
        rows = [b for b in r.json()["backup_record_response"] if b["backup_id"] == backup_id]
        return rows[0] if rows and rows[0]["status"] in ("succeed", "failed") else None

    row: dict[str, Any] = wait_for(done, timeout=30)
    return row


def test_backup_quota(live: LiveService, redis_factory: Callable[..., RedisServer]) -> None:
    creds = live.credentials(PID)
    server = redis_factory("backed-up", args=FAST)
    server.client().set("k", "v")
    a = register(live, creds, "backed-a", server).json()["instance_id"]
    b = register(live, creds, "backed-b", server).json()["instance_id"]
    taken = []
    for instance_id in (a, b):  # the quota is the project's, over all its instances
        r = take_backup(live, creds, instance_id)
        assert r.status_code == 200, r.text
        taken.append(r.json()["backup_id"])
        assert finished(live, creds, instance_id, taken[-1])["status"] == "succeed"
    assert_quota(take_backup(live, creds, a), "backup")
    other = live.credentials(OTHER)
    c = register(live, other, "backed-c", server).json()["instance_id"]
    assert take_backup(live, other, c).status_code == 200
    r = signed(live, creds, "DELETE", f"/v2/{PID}/instances/{a}/backups/{taken[0]}")
    assert r.status_code == 204, r.text
    assert take_backup(live, creds, a).status_code == 200  # a deleted backup frees its place
