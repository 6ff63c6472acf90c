"""`cachemigrate serve --ssl-certfile/--ssl-keyfile`: HTTPS with a certificate made in the test,
driven by the real SDK trusting it as its CA file; the settings' variables do the same."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Creds, cli_env, fields, free_port, run_cli, serve_cli
from support.tls import self_signed


def trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def test_https_with_the_sdk(tmp_path: Path, sdk: Any) -> None:
    v2 = sdk.v2
    cert, key = self_signed(tmp_path / "tls")
    db_url = f"sqlite:///{tmp_path / 'tls.db'}"
    env = cli_env(tmp_path)
    created = run_cli(env, "credentials", "create", "--project-id", "proj-tls", "--database", db_url)
    assert created.returncode == 0, created.stderr
    out = fields(created.stdout)
    creds = Creds(out["project_id"], out["access_key"], out["secret_key"])
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    args = ["--host", "127.0.0.1", "--port", str(port), "--database", db_url]
    args += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with serve_cli(env, *args, url=url, log=tmp_path / "serve.log", verify=trusting(cert)):
        client = sdk.client(url, creds, ca_file=cert)
        task_id = client.create_online_migration_task(
            v2.CreateOnlineMigrationTaskRequest(
                body=v2.CreateOnlineMigrationTaskBody(
                    name="tls-task", vpc_id="v", subnet_id="s", security_group_id="g"
                )
            )
        ).instance_id
        shown = client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))
        assert shown.task_name == "tls-task"
        # The SDK really verifies: without the CA file the handshake fails.
        with pytest.raises(sdk.SdkException) as exc:
            sdk.client(url, creds).list_migration_task(v2.ListMigrationTaskRequest())
        assert "SslHandShake" in type(exc.value).__name__ or "certificate" in str(exc.value).lower()
        # Only TLS on that port: plain HTTP gets no API answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_tls_from_the_environment_and_bad_settings(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    other_cert, _ = self_signed(tmp_path / "other")
    port = free_port()
    env = {
        **cli_env(tmp_path),
        "CACHEMIGRATE_SSL_CERTFILE": str(cert),
        "CACHEMIGRATE_SSL_KEYFILE": str(key),
        "CACHEMIGRATE_PORT": str(port),
        "CACHEMIGRATE_HOST": "127.0.0.1",
    }
    url = f"https://127.0.0.1:{port}"
    with serve_cli(env, url=url, log=tmp_path / "serve.log", verify=trusting(cert)):
        assert httpx.get(f"{url}/healthz", verify=trusting(cert), timeout=60).json() == {"status": "ok"}

    def refused(**overrides: str) -> str:
        bad = {k: v for k, v in {**env, **overrides}.items() if v}
        result = run_cli(bad, "serve")
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr

    assert "needs ssl_certfile" in refused(CACHEMIGRATE_SSL_CERTFILE="")
    assert f"TLS certificate {other_cert}" in refused(CACHEMIGRATE_SSL_CERTFILE=str(other_cert))
    assert "No such file" in refused(CACHEMIGRATE_SSL_KEYFILE=str(tmp_path / "missing.pem"))
