"""Key rotation on a real database: secrets written under key A (an SK, an instance's password, a
task's source and target passwords) are readable with keys [B, A], `cachemigrate secrets rotate`
moves every one of them under B, and then B alone reads them all. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from cachemigrate.errors import ConfigError
from cachemigrate.service.crypto import Cipher
from conftest import (
    Creds,
    FakeExecutor,
    LiveService,
    cli_env,
    fields,
    make_settings,
    run_cli,
    signed,
    wait_for,
)
from support.pg import pg_schema

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
ENCRYPTED_SQL = (
    "SELECT secret_key_enc FROM credentials UNION ALL SELECT password_enc FROM instances "
    "UNION ALL SELECT source_password_enc FROM tasks UNION ALL SELECT target_password_enc FROM tasks"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rotate.db'}"
        return
    with pg_schema("rotate") as (_, url):
        yield url


def stored_secrets(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [v for (v,) in conn.execute(text(ENCRYPTED_SQL)) if v is not None]
    finally:
        engine.dispose()


def readable_with(cipher: Cipher, values: list[str]) -> list[bool]:
    out = []
    for value in values:
        try:
            cipher.decrypt(value)
            out.append(True)
        except ConfigError:
            out.append(False)
    return out


def test_secrets_move_from_key_a_to_key_b(
    database_url: str, tmp_path: Path, service_factory: Any, sdk: Any, redis_factory: Any
) -> None:
    v2 = sdk.v2
    created = run_cli(
        cli_env(tmp_path, KEY_A), "credentials", "create", "--project-id", "rot-1", "--database", database_url
    )
    assert created.returncode == 0, created.stderr
    out = fields(created.stdout)
    creds = Creds(out["project_id"], out["access_key"], out["secret_key"])

    # Under key A: an instance with a password, a task with source and target passwords (it fails,
    # so that it can be restarted later).
    source, target = redis_factory("rot-src", password="src-pw"), redis_factory("rot-tgt", password="tgt-pw")
    live_a: LiveService = service_factory(
        make_settings(tmp_path, database_url=database_url, secret_key=KEY_A),
        executor=FakeExecutor(full_seconds=0.05, fail_with="stopped on purpose"),
    )
    r = signed(
        live_a,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={"name": "rot-target", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-pw"},
    )
    assert r.status_code == 200, r.text
    client = sdk.client(live_a.url, creds)
    task_id = client.create_online_migration_task(
        v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(
                name="rotation", vpc_id="v", subnet_id="s", security_group_id="g"
            )
        )
    ).instance_id
    client.set_online_migration_task(
        v2.SetOnlineMigrationTaskRequest(
            task_id=task_id,
            body=v2.SetOnlineMigrationTaskBody(
                migration_method="full_amount_migration",
                resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(
                    addrs=f"127.0.0.1:{source.port}", password="src-pw"
                ),
                target_instance=v2.ConfigMigrationInstanceBody(id=r.json()["instance_id"]),
            ),
        )
    )

    def task_status(c: Any) -> str:
        return str(c.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    wait_for(lambda: task_status(client) == "FAILED")
    token_a = signed(live_a, creds, "POST", f"/v2/{creds.project_id}/auth/tokens").json()["token"]
    live_a.stop()

    values = stored_secrets(database_url)
    assert len(values) == 4 and "src-pw" not in repr(values) and "tgt-pw" not in repr(values)
    assert readable_with(Cipher(KEY_A), values) == [True] * 4
    assert readable_with(Cipher(KEY_B), values) == [False] * 4  # B alone cannot read them yet

    # [B, A]: everything written under A is still readable; new values are written under B.
    rotated = run_cli(cli_env(tmp_path, f"{KEY_B},{KEY_A}"), "secrets", "rotate", "--database", database_url)
    assert rotated.returncode == 0, rotated.stderr
    assert (
        "re-encrypted 4 secrets under the newest key (credentials: 1, instances: 1, tasks: 2)"
        in rotated.stdout
    )
    values = stored_secrets(database_url)
    assert readable_with(Cipher(KEY_B), values) == [True] * 4
    assert readable_with(Cipher(KEY_A), values) == [False] * 4

    # [B] alone: the SK, the instance's and the task's passwords all still work.
    executor = FakeExecutor(full_seconds=0.05)
    live_b: LiveService = service_factory(
        make_settings(tmp_path, database_url=database_url, secret_key=KEY_B), executor=executor
    )
    client = sdk.client(live_b.url, creds)
    client.batch_restart_online_migration_tasks(
        v2.BatchRestartOnlineMigrationTasksRequest(
            body=v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[task_id])
        )
    )
    wait_for(lambda: task_status(client) == "SUCCESS")
    spec = executor.specs[0]
    assert spec.source.endpoint is not None and spec.source.endpoint.password == "src-pw"
    assert spec.target.password == "tgt-pw"
    r = signed(
        live_b,
        creds,
        "POST",
        f"/v2/{creds.project_id}/instances",
        json_body={"name": "again", "addrs": f"127.0.0.1:{target.port}", "password": "tgt-pw"},
    )
    assert r.status_code == 200, r.text
    # A token issued under A dies with A (tokens are not stored; they cannot be re-encrypted).
    r = httpx.get(f"{live_b.url}/v2/{creds.project_id}/migration-tasks",
                  headers={"X-Auth-Token": token_a}, timeout=60)
    assert r.status_code == 401 and "decrypt token fail" in r.json()["error_msg"]

    # A value no configured key can read is named, and nothing is changed.
    refused = run_cli(
        cli_env(tmp_path, Fernet.generate_key().decode()), "secrets", "rotate", "--database", database_url
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert (
        "cannot be decrypted with any configured key" in refused.stderr and "credentials " in refused.stderr
    )
    assert readable_with(Cipher(KEY_B), stored_secrets(database_url)) == [True] * 5
