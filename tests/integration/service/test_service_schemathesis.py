"""Property-based fuzzing of every operation in /openapi.json: never a 5xx, always a DCS error body
and an X-Request-Id. Bounded: a few dozen examples per operation."""

from __future__ import annotations

import time
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase

from conftest import LiveService, signed

EXAMPLES_PER_OPERATION = 25
SPEC_OPERATIONS = {
    ("post", "/v2/{project_id}/migration-task"),
    ("post", "/v2/{project_id}/migration/instance"),
    ("post", "/v2/{project_id}/migration/{task_id}/task"),
    ("get", "/v2/{project_id}/migration-tasks"),
    ("get", "/v2/{project_id}/migration-task/{task_id}"),
    ("get", "/v2/{project_id}/migration-task/{task_id}/stats"),
    ("get", "/v2/{project_id}/migration-task/{task_id}/logs"),
    ("post", "/v2/{project_id}/migration-task/{task_id}/stop"),
    ("post", "/v2/{project_id}/migration-task/{task_id}/sync-stop"),
    ("post", "/v2/{project_id}/migration-task/batch-stop"),
    ("post", "/v2/{project_id}/migration-tasks/batch-restart"),
    ("delete", "/v2/{project_id}/migration-tasks/delete"),
    ("put", "/v2/{project_id}/migration-task/{task_id}"),
    ("post", "/v2/{project_id}/migration-task/{task_id}/exchange-ip"),
    ("post", "/v2/{project_id}/migration-task/{task_id}/rollback-ip"),
    ("get", "/v2/{project_id}/instances/{instance_id}/backups"),
    ("get", "/v2/{project_id}/jobs/{job_id}"),
    ("get", "/v2/{project_id}/instances"),
    ("get", "/v2/{project_id}/instances/{instance_id}"),
    ("post", "/v2/{project_id}/instances"),
    ("delete", "/v2/{project_id}/instances/{instance_id}"),
}


def test_openapi_document(service_factory: Any) -> None:
    live: LiveService = service_factory()
    doc = requests.get(f"{live.url}/openapi.json", timeout=10).json()
    ops = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert ops >= SPEC_OPERATIONS, SPEC_OPERATIONS - ops
    assert all("422" not in op["responses"] for item in doc["paths"].values() for op in item.values())
    assert requests.get(f"{live.url}/docs", timeout=10).status_code == 200


def test_openapi_fuzzing_finds_no_server_errors(service_factory: Any, fake_executor: Any) -> None:
    live: LiveService = service_factory(executor=fake_executor)
    creds = live.credentials()
    token = signed(live, creds, "POST", f"/v2/{creds.project_id}/auth/tokens").json()["token"]
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    seen: dict[str, int] = {"requests": 0, "5xx": 0}
    failures: list[str] = []
    started = time.monotonic()
    session = requests.Session()

    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if "project_id" in (case.path_parameters or {}):
                case.path_parameters["project_id"] = creds.project_id
            response = case.call(
                base_url=live.url, session=session, headers={"X-Auth-Token": token}, timeout=15
            )
            seen["requests"] += 1
            if response.status_code >= 500:
                seen["5xx"] += 1
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )
            assert response.headers.get("x-request-id"), case.formatted_path
            if response.status_code >= 400:
                payload = response.json()
                assert set(payload) >= {"error_code", "error_msg", "error_ext_msg"}, payload

        check()

    session.close()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {seen['requests']} requests, {seen['5xx']} server errors, {elapsed:.1f}s")
    assert seen["requests"] >= 200
    assert not failures, failures[:5]
