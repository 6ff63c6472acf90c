"""The AK lifecycle: `credentials list | revoke | rotate` on a running service's database, and
tokens that cannot mint tokens. Revocation is checked on the very next request, no waiting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Creds, FakeExecutor, LiveService, cli_env, fields, run_cli, signed


@pytest.fixture
def live(service_factory: Any, fake_executor: FakeExecutor) -> LiveService:
    service: LiveService = service_factory(executor=fake_executor)
    return service


def tasks_url(live: LiveService, creds: Creds) -> str:
    return f"{live.url}/v2/{creds.project_id}/migration-tasks"


def token_of(live: LiveService, creds: Creds) -> str:
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/auth/tokens")
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def with_token(live: LiveService, creds: Creds, token: str) -> httpx.Response:
    return httpx.get(tasks_url(live, creds), headers={"X-Auth-Token": token}, timeout=30)


def admin(live: LiveService, tmp_path: Path, *args: str) -> Any:
    env = {**cli_env(tmp_path), "COLUMNS": "300"}  # tables as wide as their rows
    return run_cli(env, *args, "--database", live.settings.sqlalchemy_url())


def test_a_token_cannot_mint_a_token(live: LiveService, sdk: Any) -> None:
    creds = live.credentials()
    token = token_of(live, creds)
    path = f"/v2/{creds.project_id}/auth/tokens"
    r = httpx.post(f"{live.url}{path}", headers={"X-Auth-Token": token}, timeout=30)
    assert r.status_code == 403, r.text
    assert r.json()["error_code"] == "DCS.2007" and "sign the request with the AK/SK" in r.json()["error_msg"]
    # The token still does everything else, and a signed request (which may carry a token too, as
    # the SDK's preset_headers do) still gets a fresh one.
    assert with_token(live, creds, token).status_code == 200
    again = signed(live, creds, "POST", path, headers={"X-Auth-Token": token})
    assert again.status_code == 200 and again.json()["token"] != token


def test_revoked_ak_and_its_tokens_are_refused_at_once(live: LiveService, sdk: Any, tmp_path: Path) -> None:
    creds, other = live.credentials(), live.credentials()
    token = token_of(live, creds)
    client = sdk.client(live.url, creds)
    assert client.list_migration_task(sdk.v2.ListMigrationTaskRequest()).count == 0
    assert with_token(live, creds, token).status_code == 200

    revoked = admin(live, tmp_path, "credentials", "revoke", creds.ak)
    assert revoked.returncode == 0, revoked.stderr
    assert fields(revoked.stdout)["access_key"] == creds.ak and fields(revoked.stdout)["revoked_at"]

    r = signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-tasks")
    assert r.status_code == 401 and r.json()["error_code"] == "APIG.0301", r.text
    assert "revoked" in r.json()["error_msg"]
    r = with_token(live, creds, token)
    assert r.status_code == 401 and r.json()["error_code"] == "APIG.0301", r.text
    assert "revoked" in r.json()["error_msg"]
    with pytest.raises(sdk.ClientRequestException) as exc:
        client.list_migration_task(sdk.v2.ListMigrationTaskRequest())
    assert (exc.value.status_code, exc.value.error_code) == (401, "APIG.0301")
    # Without the SK nobody learns the AK was revoked: a wrong signature is only a wrong signature.
    wrong_sk = Creds(creds.project_id, creds.ak, "not-the-sk")
    forged = signed(live, wrong_sk, "GET", f"/v2/{creds.project_id}/migration-tasks")
    assert forged.status_code == 401 and "revoked" not in forged.json()["error_msg"]
    # Another AK of the same project is untouched.
    assert signed(live, other, "GET", f"/v2/{other.project_id}/migration-tasks").status_code == 200

    again = admin(live, tmp_path, "credentials", "revoke", creds.ak)
    assert again.returncode == 0 and "(already)" in again.stdout
    unknown = admin(live, tmp_path, "credentials", "revoke", "NOSUCHKEY")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "cachemigrate: error: no access key NOSUCHKEY"


def test_rotate_issues_a_new_ak_and_revokes_the_old(live: LiveService, sdk: Any, tmp_path: Path) -> None:
    creds = live.credentials()
    token = token_of(live, creds)
    rotated = admin(live, tmp_path, "credentials", "rotate", creds.ak)
    assert rotated.returncode == 0, rotated.stderr
    out = fields(rotated.stdout)
    new = Creds(out["project_id"], out["access_key"], out["secret_key"])
    assert new.project_id == creds.project_id and out["revoked"] == creds.ak
    assert new.ak != creds.ak and len(new.ak) == 20 and len(new.sk) == 40

    assert signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-tasks").status_code == 401
    assert with_token(live, creds, token).status_code == 401
    client = sdk.client(live.url, new)
    assert client.list_migration_task(sdk.v2.ListMigrationTaskRequest()).count == 0

    listed = admin(live, tmp_path, "credentials", "list", "--project-id", creds.project_id)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    rows = {line.split()[1]: line for line in lines if creds.ak in line or new.ak in line}
    assert set(rows) == {creds.ak, new.ak}, listed.stdout
    assert f"(rotated to {new.ak})" in listed.stdout
    # Used just now, so last_used_at holds a time; the new AK is not revoked.
    assert rows[new.ak].count("Z") >= 2 and rows[new.ak].rstrip(" │").endswith("-")
    assert creds.sk not in listed.stdout and new.sk not in listed.stdout

    again = admin(live, tmp_path, "credentials", "rotate", creds.ak)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    assert f"access key {creds.ak} was revoked" in again.stderr
    unknown = admin(live, tmp_path, "credentials", "rotate", "NOSUCHKEY")
    assert unknown.returncode == 1 and "no access key NOSUCHKEY" in unknown.stderr
