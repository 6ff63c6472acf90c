"""The task's ``filter`` extension through the API: validated (400 naming the rule), stored, shown
by show_migration_task (the SDK reads the task as before), documented in /openapi.json, and
applied by the real engine on an online migration and on a backup import."""

from __future__ import annotations

import shutil
from typing import Any

import httpx
import pytest
from test_verifications import path, run_verification

from conftest import LiveService, signed, wait_for
from support.compare import compare_keyspaces, keyspace
from support.filter_ref import expected, random_dataset

RULES = {
    "block_key_prefix": ["temp:", "cache:"],
    "block_type": ["stream"],
    "rename_prefix": {"old:": "new:"},
    "db_map": {"2": 0},
}


@pytest.fixture
def env(service_factory: Any, sdk: Any, redis_factory: Any) -> Any:
    live: LiveService = service_factory()
    creds = live.credentials()
    source, target = redis_factory("f-src"), redis_factory("f-tgt")
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/instances",
               json_body={"name": "filter-target", "addrs": f"127.0.0.1:{target.port}"})
    assert r.status_code == 200, r.text
    return live, creds, sdk.client(live.url, creds), source, target, r.json()["instance_id"]


def _online_task(live: LiveService, creds: Any) -> str:
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/instance",
               json_body={"name": "filtered", "vpc_id": "v", "subnet_id": "s", "security_group_id": "g"})
    assert r.status_code == 200, r.text
    return str(r.json()["instance_id"])


def _configure(live: LiveService, creds: Any, task_id: str, source: Any, target_id: str,
               rules: Any) -> httpx.Response:
    body = {
        "migration_method": "full_amount_migration", "resume_mode": "auto",
        "source_instance": {"addrs": f"127.0.0.1:{source.port}"},
        "target_instance": {"id": target_id}, "filter": rules,
    }
    return signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/{task_id}/task", json_body=body)


def test_online_task_with_filter(env: Any, sdk: Any) -> None:
    live, creds, client, source, target, target_id = env
    random_dataset(source.client())
    before = keyspace([source.client()])
    task_id = _online_task(live, creds)
    r = _configure(live, creds, task_id, source, target_id, RULES)
    assert r.status_code == 200, r.text

    def state() -> str:
        return str(client.show_migration_task(sdk.v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    wait_for(lambda: state() in ("SUCCESS", "FAILED"), timeout=60)
    assert state() == "SUCCESS"
    result = compare_keyspaces(expected(before, RULES), keyspace([target.client()]))
    assert result.ok and result.compared > 100, result.summary()
    shown = signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}").json()
    assert shown["filter"] == RULES
    assert shown["target_instance"]["id"] == target_id  # the rules do not show as an endpoint field


# Without a db merge: two source dbs into one would make keys named alike one target key.
VERIFIED = {**{k: v for k, v in RULES.items() if k != "db_map"}, "db_map": {"2": 5}, "max_ttl": 7200}


def test_verification_of_a_filtered_task(env: Any, sdk: Any) -> None:
    """A verification follows the task's rules: a clean filtered migration has no mismatch; a
    renamed key changed on the target is found and repaired under its new name."""
    live, creds, client, source, target, target_id = env
    random_dataset(source.client(), n=100, ttl_short_s=3600)
    before = keyspace([source.client()])
    task_id = _online_task(live, creds)
    assert _configure(live, creds, task_id, source, target_id, VERIFIED).status_code == 200

    def state() -> str:
        return str(client.show_migration_task(sdk.v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    wait_for(lambda: state() in ("SUCCESS", "FAILED"), timeout=60)
    assert state() == "SUCCESS"
    want = expected(before, VERIFIED)
    report = run_verification(live, creds, task_id, mode="full")["report"]
    assert report["ok"] and report["first_pass"]["missing"] == 0, report
    by_name = {k: v for k, v in VERIFIED.items() if k != "max_ttl"}
    assert report["keys_compared"] == len(expected(before, by_name))

    renamed = next(k for (db, k), v in sorted(want.items())
                   if db == 0 and k.startswith(b"new:") and v[0] == "string")
    target.client().set(renamed, "changed")
    report = run_verification(live, creds, task_id, mode="full", rounds=1, repair=True)["report"]
    assert report["first_pass"]["value"] == 1 and report["repaired"] == 1 and report["ok"], report
    result = compare_keyspaces(want, keyspace([target.client()]), ttl_tolerance_ms=120_000)
    assert result.ok, result.summary()


def test_a_task_with_a_script_cannot_be_verified(env: Any) -> None:
    live, creds, _client, source, _target, target_id = env
    task_id = _online_task(live, creds)
    rules = {"function": "shake.call(DB, ARGV)"}
    assert _configure(live, creds, task_id, source, target_id, rules).status_code == 200
    r = signed(live, creds, "POST", path(creds, task_id), json_body={"mode": "full"})
    assert r.status_code == 400 and "Lua function" in r.json()["error_msg"], r.text


@pytest.mark.parametrize(("rules", "says"), [
    ({"block_type": ["hsh"]}, "block_type[0]: unknown type 'hsh'"),
    ({"allow_key_regex": ["(unclosed"]}, "allow_key_regex[0]: not a regular expression"),
    ({"function": "if DB then"}, "function, line 1: 'end' expected"),
    ({"allow_command_group": ["NOPE"]}, "unknown command group 'NOPE'"),
    ({"blok_db": [1]}, "blok_db"),
    ({"allow_db": [-1]}, "allow_db"),
])
def test_bad_rules_are_a_400_naming_the_rule(env: Any, rules: Any, says: str) -> None:
    live, creds, _client, source, _target, target_id = env
    task_id = _online_task(live, creds)
    r = _configure(live, creds, task_id, source, target_id, rules)
    assert r.status_code == 400, r.text
    body = r.json()
    assert says in body["error_msg"], body
    r = signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}")
    assert r.status_code == 200 and r.json().get("filter") is None  # nothing was stored


def test_import_task_with_filter(env: Any) -> None:
    live, creds, _client, source, target, target_id = env
    random_dataset(source.client())
    before = keyspace([source.client()])
    bucket = live.settings.bucket_directory("local")
    assert bucket is not None
    shutil.copy(source.save(), bucket / "dump.rdb")
    body = {
        "task_name": "filtered-import", "migration_type": "backupfile_import",
        "migration_method": "full_amount_migration",
        "backup_files": {"file_source": "self_build_obs", "bucket_name": "local",
                         "files": [{"file_name": "dump.rdb", "size": "1"}]},
        "target_instance": {"id": target_id}, "filter": RULES,
    }
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/migration-task", json_body=body)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]

    def shown() -> Any:
        return signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}").json()

    wait_for(lambda: shown()["status"] in ("SUCCESS", "FAILED"), timeout=60)
    assert shown()["status"] == "SUCCESS", shown()
    assert shown()["filter"] == RULES
    result = compare_keyspaces(expected(before, RULES), keyspace([target.client()]))
    assert result.ok and result.compared > 100, result.summary()


def test_openapi_documents_the_filter(env: Any) -> None:
    live = env[0]
    doc = httpx.get(f"{live.url}/openapi.json", timeout=60).json()
    schema = doc["components"]["schemas"]["FilterBody"]
    assert {"block_key_prefix", "db_map", "rename_prefix", "function", "max_ttl"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    refs = str(doc["components"]["schemas"]["SetOnlineMigrationTaskBody"]["properties"]["filter"])
    assert "FilterBody" in refs
