"""`cachemigrate serve`, `credentials create`, `instances`, `tasks` as a user runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from conftest import Creds, cli_env, fields, free_port, run_cli, serve_cli


def test_serve_and_admin_commands(tmp_path: Path, sdk: Any) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = cli_env(tmp_path)
    no_key = {k: v for k, v in env.items() if k != "CACHEMIGRATE_SECRET_KEY"}
    refused = run_cli(no_key, "credentials", "create", "--project-id", "p1234", "--database", db_url)
    assert refused.returncode == 1 and "CACHEMIGRATE_SECRET_KEY" in refused.stderr

    created = run_cli(env, "credentials", "create", "--project-id", "proj-cli-1", "--database", db_url)
    assert created.returncode == 0, created.stderr
    lines = fields(created.stdout)
    creds = Creds(lines["project_id"], lines["access_key"], lines["secret_key"])

    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--host", "127.0.0.1", "--port", str(port), "--database", db_url]
    args += ["--metrics-port", str(metrics_port)]
    with serve_cli(env, *args, url=url, log=tmp_path / "serve.log"):
        assert httpx.get(f"{url}/docs", timeout=60).status_code == 200
        assert httpx.get(f"{url}/openapi.json", timeout=60).json()["info"]["title"] == "cachemigrate"
        client = sdk.client(url, creds)
        v2 = sdk.v2
        task_id = client.create_online_migration_task(
            v2.CreateOnlineMigrationTaskRequest(
                body=v2.CreateOnlineMigrationTaskBody(
                    name="cli-task", vpc_id="v", subnet_id="s", security_group_id="g"
                )
            )
        ).instance_id
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60).text
        assert "cachemigrate_tasks{status=" in metrics and "cachemigrate_keys_moved_total" in metrics
        assert httpx.get(f"{url}/metrics", timeout=60).status_code == 404  # not for tenants
    listed = run_cli(env, "tasks", "--database", db_url)
    assert listed.returncode == 0 and task_id[:8] in listed.stdout and "cli-task" in listed.stdout
    inst = run_cli(env, "instances", "--project-id", "proj-cli-1", "--database", db_url)
    assert inst.returncode == 0 and "instance_id" in inst.stdout
