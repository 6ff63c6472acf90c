"""Data at rest (engine/private_files.py): the SQLite database (and its -wal/-shm), the dev secret
key and backup files are 0600, the directories the service creates 0700, under any umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import LiveService, make_settings, signed, wait_for
from support.servers import RedisServer

PID = "0123456789abcdef0123456789abcdef"
FAST = ["--repl-diskless-sync-delay", "0"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022], ids=["umask-000", "umask-022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_database_key_and_backups_are_private(
    umask: int,
    service_factory: Callable[..., LiveService],
    redis_factory: Callable[..., RedisServer],
    tmp_path: Path,
) -> None:
    server = redis_factory("source", args=FAST)
    server.client().set("k", "v")
    data = tmp_path / "state" / "data"  # two levels the service creates
    live = service_factory(make_settings(tmp_path, data_dir=data, secret_key=None, dev_mode=True))
    creds = live.credentials(PID)
    body = {"name": "src-1", "addrs": f"127.0.0.1:{server.port}"}
    r = signed(live, creds, "POST", f"/v2/{PID}/instances", json_body=body)
    assert r.status_code == 200, r.text
    instance_id = r.json()["instance_id"]
    r = signed(live, creds, "POST", f"/v2/{PID}/instances/{instance_id}/backups", json_body={})
    assert r.status_code == 200, r.text
    backup_id = r.json()["backup_id"]

    def succeeded() -> bool:
        r = signed(live, creds, "GET", f"/v2/{PID}/instances/{instance_id}/backups")
        return [b["status"] for b in r.json()["backup_record_response"]] == ["succeed"]

    wait_for(succeeded, timeout=30)
    backup = data.resolve() / "backups" / PID / instance_id / f"{backup_id}.rdb"
    files = [
        data / "cachemigrate.db",
        data / "cachemigrate.db-wal",  # WAL mode, while the service is connected
        data / "cachemigrate.db-shm",
        data / "dev-secret.key",
        backup,
    ]
    assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}
    dirs = [tmp_path / "state", data, *list(backup.parents)[:3], data / "backups"]
    assert {str(d): oct(mode(d)) for d in dirs} == {str(d): "0o700" for d in dirs}
    # What the service did not create keeps its mode (the bucket directory, made by the test).
    assert mode(tmp_path / "bucket") == 0o777 & ~umask
