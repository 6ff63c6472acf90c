"""What the web console needs of the service beside the DCS API: its files at /console (with
headers that let only its own scripts run), the task list's status filter and the connection
test of a registered instance — each as scoped to the project as the rest of the API."""

from __future__ import annotations

from typing import Any

import httpx

from cachemigrate.service.db import repo
from conftest import Creds, LiveService, signed, wait_for
from support.servers import RedisServer


def test_console_files(service_factory: Any) -> None:
    live: LiveService = service_factory()
    r = httpx.get(f"{live.url}/console", follow_redirects=False, timeout=60)
    assert r.status_code == 308 and r.headers["location"] == "/console/"
    page = httpx.get(f"{live.url}/console/", timeout=60)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    js = httpx.get(f"{live.url}/console/js/app.js", timeout=60)
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    missing = httpx.get(f"{live.url}/console/js/nope.js", timeout=60)
    assert missing.status_code == 404 and missing.json()["error_code"] == "DCS.4001"
    # Nothing beside the static files: the package's Python source is one directory up.
    for sneaky in ("%2e%2e/__init__.py", "..%2f__init__.py", "%2e%2e%2f__init__.py"):
        r = httpx.get(f"{live.url}/console/{sneaky}", timeout=60)
        assert r.status_code == 404 and "STATIC" not in r.text, sneaky
    assert "/console" not in httpx.get(f"{live.url}/openapi.json", timeout=60).text


def _tasks(live: LiveService, creds: Creds, query: str) -> Any:
    return signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-tasks", query=query)


def test_task_list_status_filter(service_factory: Any) -> None:
    live: LiveService = service_factory()
    a, b = live.credentials(), live.credentials("another-project")
    base = f"/v2/{a.project_id}"
    ids = []
    for name in ("filter-running", "filter-idle"):
        r = signed(live, a, "POST", f"{base}/migration/instance",
                   json_body={"name": name, "vpc_id": "v", "subnet_id": "s", "security_group_id": "g"})
        assert r.status_code == 200, r.text
        ids.append(r.json()["instance_id"])
    wait_for(lambda: all(
        signed(live, a, "GET", f"{base}/migration-task/{i}").json()["status"] == "RUNNING" for i in ids))
    # The state the filter looks for, set in the record (no servers needed for a filter).
    live.services.db.run_sync(repo.update_task, task_id=ids[0], status="INCRMIGEATING")

    def names(query: str) -> list[str]:
        return [t["task_name"] for t in _tasks(live, a, query).json()["migration_tasks"]]

    assert names("status=INCRMIGEATING") == ["filter-running"]
    assert names("status=incrmigrating") == ["filter-running"]  # the documented correction too
    assert sorted(names("status=RUNNING,INCRMIGEATING")) == ["filter-idle", "filter-running"]
    assert names("status=FAILED") == []
    r = _tasks(live, a, "status=INCRMIGEATING&name=idle")
    assert r.json() == {"count": 0, "migration_tasks": []}
    bad = _tasks(live, a, "status=NOPE")
    assert bad.status_code == 400 and bad.json()["error_code"] == "DCS.4063"
    assert "status" in bad.json()["error_msg"]
    # Another project filters its own (none).
    assert _tasks(live, b, "status=INCRMIGEATING").json()["count"] == 0


def test_connection_test(service_factory: Any, redis_factory: Any) -> None:
    live: LiveService = service_factory()
    a, b = live.credentials(), live.credentials("another-project")
    server: RedisServer = redis_factory("probe", password="pw-one")
    r = signed(live, a, "POST", f"/v2/{a.project_id}/instances",
               json_body={"name": "probe", "addrs": f"127.0.0.1:{server.port}", "password": "pw-one"})
    assert r.status_code == 200, r.text
    inst = r.json()["instance_id"]
    path = f"/v2/{a.project_id}/instances/{inst}/connection-test"
    ok = signed(live, a, "POST", path)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["reachable"] is True and body["engine"] == "redis" and body["instance_id"] == inst
    assert body["engine_version"] == server.client().info("server")["redis_version"]
    assert "pw-one" not in ok.text

    # Another project's instance is unknown, as everywhere.
    other = signed(live, b, "POST", f"/v2/{b.project_id}/instances/{inst}/connection-test")
    assert other.status_code == 404 and other.json()["error_code"] == "DCS.3022"

    server.client().config_set("requirepass", "pw-two")
    refused = signed(live, a, "POST", path)
    assert refused.status_code == 400 and refused.json()["error_code"] == "DCS.4080", refused.text
    server.stop()
    gone = signed(live, a, "POST", path)
    assert gone.status_code == 400 and gone.json()["error_code"] == "DCS.4063", gone.text
    assert "cannot be reached" in gone.json()["error_msg"]
