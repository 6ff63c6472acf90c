"""/metrics names every project's tasks: it is served on the operator's listener only
(metrics_port, 127.0.0.1 by default), and the tenant-facing port shows no task or project id to
anyone, signed or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cachemigrate.errors import ConfigError
from cachemigrate.service import serving
from conftest import FakeExecutor, LiveService, make_settings, signed, wait_for


def test_metrics_only_on_the_operator_listener(
    service_factory: Any, fake_executor: FakeExecutor, sdk: Any, redis_factory: Any
) -> None:
    v2 = sdk.v2
    live: LiveService = service_factory(executor=fake_executor)
    creds = live.credentials()
    client = sdk.client(live.url, creds)
    source, target = redis_factory("m-src"), redis_factory("m-tgt")
    task_id = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(
                name="metered", vpc_id="v", subnet_id="s", security_group_id="g"
            )
        )
    ).instance_id
    client.set_online_migration_task(
        v2.SetOnlineMigrationTaskRequest(
            task_id=task_id,
            body=v2.SetOnlineMigrationTaskBody(
                migration_method="incremental_migration",
                resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
                target_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{target.port}"),
            ),
        )
    )
    # The operator sees the task by id (its replication lag) on the metrics listener, on loopback.
    assert live.settings.metrics_host == "127.0.0.1"
    scraped = wait_for(
        lambda: (
            (text := httpx.get(live.metrics_url, timeout=10).text)
            and f'cachemigrate_task_lag_bytes{{task_id="{task_id}"}} 50.0' in text
            # the status gauge follows the status write, which may come a moment after the lag
            and 'cachemigrate_tasks{status="INCRMIGEATING"} 1.0' in text
            and text
        )
    )
    assert scraped

    # The tenant-facing port: no /metrics, and nothing there names the task or the project unless
    # the caller's own credentials ask for it.
    for path in ("/metrics", "/metrics/", "/metrics?format=prometheus"):
        r = httpx.get(f"{live.url}{path}", timeout=10)
        assert r.status_code == 404 and r.json()["error_code"] == "DCS.4001", path
    signed_scrape = signed(live, creds, "GET", "/metrics")
    assert signed_scrape.status_code == 404
    for path in (
        "/",
        "/healthz",
        "/docs",
        "/openapi.json",
        "/metrics",
        f"/v2/{creds.project_id}/migration-tasks",
    ):
        r = httpx.get(f"{live.url}{path}", timeout=10)
        assert task_id not in r.text and creds.project_id not in r.text, path
    # The listener serves only /metrics (not the API).
    r = httpx.get(live.metrics_url.replace("/metrics", f"/v2/{creds.project_id}/migration-tasks"), timeout=10)
    assert r.status_code == 404


def test_metrics_listener_settings(tmp_path: Path, service_factory: Any) -> None:
    defaults = make_settings(tmp_path)
    assert defaults.metrics_port is None and defaults.metrics_host == "127.0.0.1"  # off unless asked
    live: LiveService = service_factory()
    same = live.settings.model_copy(update={"metrics_port": live.settings.port})
    with pytest.raises(ConfigError, match="metrics_port must differ from port"):
        serving.servers(live.app, same)
    alone = serving.servers(live.app, live.settings.model_copy(update={"metrics_port": None}))
    assert len(alone) == 1  # the API only
