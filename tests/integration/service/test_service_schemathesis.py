"""The OpenAPI document, and property-based fuzzing of every operation in it (scripts/api_fuzz.py):
never a 5xx, always a DCS error body and an X-Request-Id. Bounded: a few examples per operation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from conftest import LiveService

FUZZ = Path(__file__).resolve().parents[3] / "scripts" / "api_fuzz.py"
EXAMPLES_PER_OPERATION = 3  # make fuzz-api runs more
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


def test_openapi_fuzzing_finds_no_server_errors(tmp_path: Path) -> None:
    """scripts/api_fuzz.py as `make fuzz-api` runs it (its own `cachemigrate serve`, a real
    redis-server, SDK-signed requests), with a few examples per operation and mode. Its own
    directory: hypothesis keeps its database in the working directory, and the suite's may be a
    temporary one already removed. No time assertion (speed lives in benchmarks): the timeout
    only bounds a hang."""
    done = subprocess.run(
        [sys.executable, str(FUZZ), "--examples", str(EXAMPLES_PER_OPERATION)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    print(done.stdout)
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines["5xx"] == "0" and lines["error answers not DCS-shaped or without X-Request-Id"] == "0"
    sent = int(lines["requests sent"].split()[0])
    assert sent >= 15 * EXAMPLES_PER_OPERATION, done.stdout
    assert "2xx" in lines["responses by status class"], done.stdout  # it got past the front door
