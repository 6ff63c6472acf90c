"""Verifications of a migration task (cachemigrate extension): real redis-servers, the real
engine, the SDK to drive the task and signed requests for the extension."""

from __future__ import annotations

from typing import Any

import pytest
from test_service_online_real import messages, start, status

from conftest import LiveService, signed, wait_for
from support.compare import compare_servers


@pytest.fixture
def env(service_factory: Any, sdk: Any, redis_factory: Any) -> Any:
    live: LiveService = service_factory()
    creds = live.credentials()
    source, target = redis_factory("v-src", password="src-pw"), redis_factory("v-tgt", password="tgt-pw")
    r = signed(
        live, creds, "POST", f"/v2/{creds.project_id}/instances",
        json_body={"name": "verify-target", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-pw"},
    )
    assert r.status_code == 200, r.text
    return live, creds, sdk.client(live.url, creds), source, target, r.json()["instance_id"]


def path(creds: Any, task_id: str, tail: str = "") -> str:
    return f"/v2/{creds.project_id}/migration-task/{task_id}/verifications{tail}"


def run_verification(live: LiveService, creds: Any, task_id: str, **body: Any) -> dict[str, Any]:
    """POST a verification, wait for its end, return what GET answers."""
    r = signed(live, creds, "POST", path(creds, task_id), json_body=body)
    assert r.status_code == 202, r.text
    vid = r.json()["verification_id"]
    assert r.json()["status"] == "RUNNING"

    def done() -> dict[str, Any] | None:
        got = signed(live, creds, "GET", path(creds, task_id, f"/{vid}"))
        assert got.status_code == 200, got.text
        info: dict[str, Any] = got.json()
        return None if info["status"] == "RUNNING" else info

    info = wait_for(done, timeout=60)
    assert info["status"] == "SUCCESS", info
    assert info["verification_id"] == vid and info["task_id"] == task_id
    return info


def new_online(v2: Any, client: Any, name: str) -> str:
    """An online task not configured yet (no source, no target)."""
    body = v2.CreateOnlineMigrationTaskBody(name=name, vpc_id="v", subnet_id="s", security_group_id="g")
    res = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(body=body))
    return str(res.instance_id)


def fill(src: Any) -> None:
    for i in range(200):
        src.set(f"k:{i}", i)
    src.hset("h", mapping={"a": "1", "b": "2"})
    src.rpush("l", "x", "y", "z")
    src.sadd("s", "m1", "m2")
    src.zadd("z", {"a": 1, "b": 2})
    src.set("expiring", "v", ex=3600)
    src.select(2)
    src.set("in-db-2", "yes")


def test_verify_a_full_migration_find_by_kind_and_repair(env: Any, sdk: Any) -> None:
    live, creds, client, source, target, target_id = env
    fill(source.client())
    task_id = start(sdk, client, source, target_id, "full_amount_migration", "verify-full")
    wait_for(lambda: status(sdk, client, task_id) in ("SUCCESS", "FAILED"), timeout=60)
    assert status(sdk, client, task_id) == "SUCCESS", messages(sdk, client, task_id)

    clean = run_verification(live, creds, task_id, mode="full")
    report = clean["report"]
    assert report["ok"] is True and report["mismatches"] == 0, report
    assert report["keys_compared"] == 206
    assert report["by_kind"] == {"missing": 0, "extra": 0, "type": 0, "value": 0, "ttl": 0}
    assert clean["mode"] == "full" and clean["repair"] is False

    # Behind the migrator's back: the target loses, gains and changes keys.
    tgt = target.client()
    tgt.delete("k:1")  # missing
    tgt.set("only-in-target", "x")  # extra
    tgt.delete("h")
    tgt.set("h", "now a string")  # type
    tgt.set("k:2", "changed")  # value
    tgt.rpush("l", "more")  # value
    tgt.persist("expiring")  # ttl
    tgt.expire("k:3", 7200)  # ttl

    found = run_verification(live, creds, task_id, mode="full", rounds=1)["report"]
    assert found["by_kind"] == {"missing": 1, "extra": 1, "type": 1, "value": 2, "ttl": 2}, found
    assert found["mismatches"] == 7 and found["ok"] is False and found["repaired"] == 0
    assert {(e["key"], e["kind"]) for e in found["examples"]} == {
        ("k:1", "missing"), ("only-in-target", "extra"), ("h", "type"), ("k:2", "value"),
        ("l", "value"), ("expiring", "ttl"), ("k:3", "ttl"),
    }
    # Nothing was written: the target still differs.
    assert len(compare_servers([source.client()], [tgt]).mismatches) == 7

    # A sample as large as the keyspace reads every key (SCAN): the same differences.
    sampled = run_verification(live, creds, task_id, mode="sampled", sample=1000, rounds=0)
    assert sampled["mode"] == "sampled" and sampled["sample"] == 1000
    assert sampled["report"]["by_kind"] == found["by_kind"]

    repaired = run_verification(live, creds, task_id, mode="full", repair=True, rounds=1)["report"]
    assert repaired["repaired"] == 7 and repaired["repair_failed"] == 0, repaired
    assert repaired["mismatches"] == 0 and repaired["ok"] is True
    assert not any(line.startswith("ERROR") for line in repaired["log"]), repaired["log"]
    assert repaired["first_pass"] == found["by_kind"]
    assert compare_servers([source.client()], [tgt]).mismatches == []
    assert run_verification(live, creds, task_id)["report"]["mismatches"] == 0

    listed = signed(live, creds, "GET", path(creds, task_id), query="limit=10")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total_num"] == 5 and len(body["verifications"]) == 5
    assert all(v["task_id"] == task_id and v["status"] == "SUCCESS" for v in body["verifications"])

    # Another project sees neither the task nor its verifications (key names are tenant data).
    other = live.credentials("fedcba9876543210fedcba9876543210")
    vid = clean["verification_id"]
    for method, tail, extra in (("GET", f"/{vid}", None), ("GET", "", None), ("POST", "", {"mode": "full"})):
        r = signed(live, other, method, path(other, task_id, tail), json_body=extra)
        assert r.status_code == 400 and r.json()["error_code"] == "DCS.4133", r.text
        assert "only-in-target" not in r.text and "k:1" not in r.text
    r = signed(live, creds, "GET", path(creds, task_id, "/no-such-verification"))
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4063", r.text
    r = signed(live, creds, "GET", path(creds, "no-such-task", f"/{vid}"))
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4133", r.text


def test_verify_an_incremental_migration_while_it_runs(env: Any, sdk: Any) -> None:
    live, creds, client, source, target, target_id = env
    v2 = sdk.v2
    src, tgt = source.client(), target.client()
    fill(src)
    task_id = start(sdk, client, source, target_id, "incremental_migration", "verify-incr")
    wait_for(lambda: status(sdk, client, task_id) in ("INCRMIGEATING", "FAILED"), timeout=60)
    assert status(sdk, client, task_id) == "INCRMIGEATING", messages(sdk, client, task_id)
    src.select(0)
    src.set("written-later", "yes")
    wait_for(lambda: tgt.get("written-later") == b"yes", timeout=30)

    report = run_verification(live, creds, task_id, mode="sampled", sample=50)["report"]
    assert report["mismatches"] == 0 and report["keys_compared"] >= 50, report

    tgt.delete("k:5")
    tgt.set("stray", "1")
    found = run_verification(live, creds, task_id, mode="full", rounds=1)["report"]
    assert found["by_kind"]["missing"] == 1 and found["by_kind"]["extra"] == 1 and found["mismatches"] == 2
    fixed = run_verification(live, creds, task_id, repair=True, rounds=1)["report"]
    assert fixed["repaired"] == 2 and fixed["mismatches"] == 0, fixed
    assert compare_servers([source.client()], [tgt]).mismatches == []
    assert status(sdk, client, task_id) == "INCRMIGEATING"
    client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=task_id))


def test_verification_refused_without_a_live_source_and_bad_input(env: Any, sdk: Any) -> None:
    live, creds, client, source, _target, target_id = env
    v2 = sdk.v2
    # An online task not configured yet: no source to compare with.
    unconfigured = new_online(v2, client, "not-yet")
    r = signed(live, creds, "POST", path(creds, unconfigured), json_body={"mode": "full"})
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4957", r.text
    assert "source" in r.json()["error_msg"]

    # A backup import has no live source.
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    source.client().set("a", "1")
    (bucket / "d.rdb").write_bytes(source.save().read_bytes())
    imported = client.create_migration_task(
        v2.CreateMigrationTaskRequest(
            body=v2.CreateMigrationTaskBody(
                task_name="import-1", migration_type="backupfile_import",
                migration_method="full_amount_migration",
                backup_files=v2.BackupFilesBody(
                    file_source="self_build_obs", bucket_name="local", files=[v2.Files(file_name="d.rdb")]
                ),
                target_instance=v2.TargetInstanceBody(id=target_id),
            )
        )
    ).id
    r = signed(live, creds, "POST", path(creds, imported), json_body={"mode": "full"})
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4957", r.text
    assert "backupfile_import task has no live source" in r.json()["error_msg"]

    # A task that migrates one db only: a verification compares every db (not supported yet).
    one_db = client.create_migration_task(
        v2.CreateMigrationTaskRequest(
            body=v2.CreateMigrationTaskBody(
                task_name="one-db", migration_type="online_migration",
                migration_method="full_amount_migration",
                source_instance=v2.SourceInstanceBody(
                    addrs=f"127.0.0.1:{source.port}", password="src-pw", db="2"
                ),
                target_instance=v2.TargetInstanceBody(id=target_id),
            )
        )
    ).id
    r = signed(live, creds, "POST", path(creds, one_db), json_body={"mode": "full"})
    assert r.status_code == 400 and r.json()["error_code"] == "DCS.4957", r.text
    assert "only db 2" in r.json()["error_msg"]

    task_id = start(sdk, client, source, target_id, "full_amount_migration", "verify-bad-input")
    for body, field in (
        ({"mode": "everything"}, "mode"),
        ({"mode": "sampled"}, "sample"),
        ({"mode": "full", "sample": 10}, "sample"),
        ({"mode": "sampled", "sample": 0}, "sample"),
        ({"mode": "sampled", "sample": 10**9}, "sample"),
        ({"rounds": 11}, "rounds"),
        ({"rounds": -1}, "rounds"),
    ):
        r = signed(live, creds, "POST", path(creds, task_id), json_body=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error_code"] == "DCS.4063" and field in r.json()["error_msg"], (body, r.text)
    assert signed(live, creds, "GET", path(creds, task_id)).json()["total_num"] == 0


def test_verifications_in_openapi(service_factory: Any) -> None:
    import httpx

    live: LiveService = service_factory()
    doc = httpx.get(f"{live.url}/openapi.json", timeout=60).json()
    ops = doc["paths"]["/v2/{project_id}/migration-task/{task_id}/verifications"]
    assert "cachemigrate extension" in ops["post"]["description"]
    assert ops["post"]["summary"] and ops["get"]["summary"]
    one = doc["paths"]["/v2/{project_id}/migration-task/{task_id}/verifications/{verification_id}"]
    assert "cachemigrate extension" in one["get"]["description"]
    props = doc["components"]["schemas"]["CreateVerificationBody"]["properties"]
    assert props["rounds"]["maximum"] == 10
    assert any(alt.get("maximum") == 100_000 for alt in props["sample"].get("anyOf", [props["sample"]]))


def test_a_verification_running_at_a_restart_is_failed(service_factory: Any) -> None:
    from cachemigrate.service.db import repo
    from cachemigrate.service.db import verifications as vrepo
    from cachemigrate.service.verifications import INTERRUPTED

    live: LiveService = service_factory()
    creds = live.credentials()
    db = live.services.db
    task = db.run_sync(
        repo.add_task, project_id=creds.project_id, name="was-verified", migration_type="online_migration",
        status="TERMINATED",
    )
    row = db.run_sync(
        vrepo.add_verification, project_id=creds.project_id, task_id=task.id, mode="full", sample=None,
        rounds=3, repair=False,
    )
    live.stop()
    again = service_factory(live.settings)
    r = signed(again, creds, "GET", path(creds, task.id, f"/{row.id}"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "FAILED" and r.json()["error_message"] == INTERRUPTED
    assert r.json()["report"] is None
