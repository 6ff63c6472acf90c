"""Bounded request schemas (service/api/fields.py and the models over it): every input string
has a maxLength and every list a maxItems in /openapi.json, numbers a range; the bounds are
enforced as 400 DCS.4063 naming the field (never a 500, never the value)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from conftest import Creds, LiveService, signed
from support.servers import RedisServer

PID = "0123456789abcdef0123456789abcdef"


def walk(doc: dict[str, Any], node: dict[str, Any], where: str) -> Iterator[str]:
    """Where a string lacks maxLength, a list maxItems, or a number a minimum and maximum."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        yield from walk(doc, doc["components"]["schemas"][name], f"{where}<{name}>")
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from walk(doc, sub, f"{where}|{i}")
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        yield f"{where}: string without maxLength"
    elif kind == "array":
        if "maxItems" not in node:
            yield f"{where}: array without maxItems"
        yield from walk(doc, node.get("items", {}), f"{where}[]")
    elif kind in ("integer", "number") and not ("maximum" in node and "minimum" in node):
        yield f"{where}: number without a range"
    elif kind == "object" or "properties" in node:
        for prop, sub in node.get("properties", {}).items():
            yield from walk(doc, sub, f"{where}.{prop}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield from walk(doc, extra, f"{where}.*")


@pytest.fixture
def live(service_factory: Callable[..., LiveService]) -> LiveService:
    return service_factory()


@pytest.fixture
def creds(live: LiveService) -> Creds:
    return live.credentials(PID)


def test_every_input_is_bounded_in_the_openapi_document(live: LiveService) -> None:
    doc = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    unbounded: list[str] = []
    bodies = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            here = f"{method.upper()} {path}"
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                bodies += 1
                unbounded += walk(doc, body["schema"], f"{here} body")
            for param in op.get("parameters", []):
                if param["in"] == "query":
                    unbounded += walk(doc, param["schema"], f"{here} ?{param['name']}")
    assert bodies >= 10  # the walk did see the request bodies
    assert not unbounded, "\n".join(unbounded)
    # The walk knows a bound when it sees one.
    create = doc["components"]["schemas"]["CreateMigrationTaskBody"]["properties"]
    assert create["task_name"]["maxLength"] == 64
    assert create["description"]["anyOf"][0]["maxLength"] == 1024
    stop = doc["components"]["schemas"]["BatchStopMigrationTasksBody"]["properties"]
    assert stop["migration_tasks"]["maxItems"] == 50
    assert list(walk(doc, {"type": "array", "items": {"type": "string"}}, "x")) == [
        "x: array without maxItems",
        "x[]: string without maxLength",
    ]


TARGET = {"id": "d2c8399f-bdba-43c1-8069-3ff17a1a79d5"}
IMPORT = {
    "task_name": "import-1",
    "migration_type": "backupfile_import",
    "migration_method": "full_amount_migration",
    "backup_files": {
        "file_source": "self_build_obs",
        "bucket_name": "local",
        "files": [{"file_name": "a.rdb"}],
    },
    "target_instance": TARGET,
}
SECRET = "s3cr3t-" * 100  # 700 characters: over the password bound


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


OVER_LONG: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/migration-task", with_(IMPORT, task_name="t" * 65), "task_name"),
    ("POST", "/migration-task", with_(IMPORT, description="d" * 1025), "description"),
    ("POST", "/migration-task", with_(IMPORT, migration_type="x" * 33), "migration_type"),
    (
        "POST",
        "/migration-task",
        with_(IMPORT, target_instance={**TARGET, "password": SECRET}),
        "target_instance.password",
    ),
    ("POST", "/migration-task", with_(IMPORT, target_instance={"id": "i" * 65}), "target_instance.id"),
    (
        "POST",
        "/migration-task",
        with_(IMPORT, backup_files={**IMPORT["backup_files"], "files": [{"file_name": "a.rdb"}] * 1001}),
        "backup_files.files",
    ),
    (
        "POST",
        "/migration-task",
        with_(IMPORT, backup_files={**IMPORT["backup_files"], "files": [{"file_name": "f" * 1025}]}),
        "backup_files.files.0.file_name",
    ),
    (
        "POST",
        "/migration/instance",
        {"name": "online-1", "vpc_id": "v" * 65, "subnet_id": "s", "security_group_id": "g"},
        "vpc_id",
    ),
    ("POST", "/migration-task/batch-stop", {"migration_tasks": ["t" * 65]}, "migration_tasks.0"),
    ("POST", "/migration-tasks/batch-restart", {"migration_tasks": ["t"] * 51}, "migration_tasks"),
    ("DELETE", "/migration-tasks/delete", {"task_id_list": ["t"] * 1001}, "task_id_list"),
    ("PUT", "/migration-task/x", {"resume_mode": "a" * 33}, "resume_mode"),
    ("POST", "/migration-task/x/exchange-ip", {"exchanged_ip": ["10.0.0.1"] * 17}, "exchanged_ip"),
    (
        "POST",
        "/migration/x/task",
        {
            "migration_method": "full_amount_migration",
            "resume_mode": "auto",
            "bandwidth_limit_mb": "123456",
            "source_instance": {"addrs": "127.0.0.1:1"},
            "target_instance": {"addrs": "127.0.0.1:2"},
        },
        "bandwidth_limit_mb",
    ),
    ("POST", "/instances", {"name": "inst-1", "addrs": "a" * 1025}, "addrs"),
    ("POST", "/instances/x/backups", {"remark": "r" * 1025}, "remark"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), OVER_LONG, ids=[c[3] for c in OVER_LONG])
def test_over_long_input_is_dcs_4063_naming_the_field(
    live: LiveService, creds: Creds, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    r = signed(live, creds, method, f"/v2/{PID}{path}", json_body=body)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["error_code"] == "DCS.4063", doc
    assert f"Invalid {field} parameter" in doc["error_msg"], doc
    assert "s3cr3t" not in r.text


def test_at_the_bounds_an_input_is_accepted(
    live: LiveService, creds: Creds, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory("bounds", password="p" * 512)
    body = {
        "name": "n" * 64,
        "addrs": f"127.0.0.1:{server.port}",
        "password": "p" * 512,
        "description": "d" * 1024,
        "access_user": None,
    }
    r = signed(live, creds, "POST", f"/v2/{PID}/instances", json_body=body)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "n" * 64
