"""The backup store's disk fills up during a backup (issue 13): the backup ends failed with the
reason, its partial file is removed, and the service goes on (the next backup that fits works).
The store is a 1 MiB tmpfs the test mounts (root) and unmounts."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachemigrate.service.db import backups as brepo
from conftest import LiveService, make_settings, signed, wait_for
from support.counters import fault_row
from support.require import require
from support.servers import RedisServer

FAST = ["--repl-diskless-sync-delay", "0"]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small-store"
    mnt.mkdir()
    require(os.geteuid() == 0 and shutil.which("mount"), "root and mount(8), to mount a 1 MiB tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    require(done.returncode == 0, f"a tmpfs mount (mount said: {done.stderr.strip()})")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_backup_store_full(service_factory: Any, sdk: Any, redis_factory: Any, small_fs: Path,
                           tmp_path: Path) -> None:
    live: LiveService = service_factory(make_settings(tmp_path, backup_store=f"file://{small_fs}"))
    creds = live.credentials()
    client, v2 = sdk.client(live.url, creds), sdk.v2
    big = redis_factory("big", args=FAST)
    p = big.client().pipeline(transaction=False)
    for i in range(3000):
        p.set(f"k:{i}", os.urandom(1000))  # a 3 MB RDB into a 1 MiB store
    p.execute()
    small = redis_factory("small", args=FAST)
    small.client().set("fits", "yes")

    def register(name: str, server: RedisServer) -> str:
        r = signed(live, creds, "POST", f"/v2/{creds.project_id}/instances",
                   json_body={"name": name, "addrs": f"127.0.0.1:{server.port}"})
        assert r.status_code == 200, r.text
        return str(r.json()["instance_id"])

    def backup(instance_id: str) -> Any:
        backup_id = client.copy_instance(
            v2.CopyInstanceRequest(instance_id=instance_id, body=v2.BackupInstanceBody(remark="disk"))
        ).backup_id

        def finished() -> Any:
            rows = client.list_backup_records(
                v2.ListBackupRecordsRequest(instance_id=instance_id)
            ).backup_record_response
            row = next((r for r in rows if r.backup_id == backup_id), None)
            return row if row is not None and row.status in ("succeed", "failed") else None

        return wait_for(finished, timeout=60)

    big_id, small_id = register("big-instance", big), register("small-instance", small)
    failed = backup(big_id)
    assert failed.status == "failed", failed
    assert _files(small_fs) == []  # the partial file is gone: the store is as it was
    row = live.services.db.run_sync(brepo.get_backup, project_id=creds.project_id, backup_id=failed.backup_id)
    assert failed.error_code == "dcs.08.0001" and "No space left on device" in row.error_message
    # The service is fine: the next backup that fits the store succeeds.
    ok = backup(small_id)
    assert ok.status == "succeed", ok
    assert [Path(f).suffix for f in _files(small_fs)] == [".rdb"]
    fault_row(fault="backup store disk full", injected="1 MiB tmpfs, 3 MB RDB", outage_s=None,
              load="one backup", status="backup failed, partial file removed, next backup succeed",
              recover_s=None, keys_compared=None, mismatches=0, lost=0, doubled=0)
