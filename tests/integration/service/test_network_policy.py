"""The service as a trust boundary: it connects only inside the networks its operator allows.

The allowed networks here are single loopback addresses (all of 127.0.0.0/8 is local), so the
servers "outside" them are real listeners on this host: a listening socket that never accepts
shows a connection in its queue, and a redis-server counts ``total_connections_received``. A
refusal must leave both untouched, and must read like any other endpoint that cannot be used.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Creds, FakeExecutor, LiveService, make_settings, signed, wait_for
from support.servers import RedisServer

NARROW = "feedc0de" * 4  # a project with its own, narrower networks
UNREACHABLE_MSG = "Invalid {field} parameter in the request: the instance cannot be reached"


class Listener:
    """A listening socket that never accepts by itself; ``pending()`` takes and counts what
    reached its accept queue."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.host = host
        self.port = int(self.sock.getsockname()[1])

    @property
    def addrs(self) -> str:
        return f"{self.host}:{self.port}"

    def pending(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


@pytest.fixture
def listeners() -> Iterator[Any]:
    opened: list[Listener] = []

    def make(host: str, port: int = 0) -> Listener:
        opened.append(Listener(host, port))
        return opened[-1]

    yield make
    for item in opened:
        item.sock.close()


def connections(server: RedisServer, client: Any) -> int:
    """Connections the server accepted so far (``client`` keeps its one connection open)."""
    return int(client.info("stats")["total_connections_received"])


def register(live: LiveService, creds: Creds, addrs: str, **extra: Any) -> Any:
    body = {"name": "inst", "addrs": addrs, **extra}
    return signed(live, creds, "POST", f"/v2/{creds.project_id}/instances", json_body=body)


def online_task(live: LiveService, creds: Creds) -> str:
    body = {"name": "netpolicy", "vpc_id": "v", "subnet_id": "s", "security_group_id": "g"}
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/instance", json_body=body)
    assert r.status_code == 200, r.text
    task_id = str(r.json()["instance_id"])

    def status() -> str:
        shown = signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}")
        return str(shown.json()["status"])

    wait_for(lambda: status() == "RUNNING")
    return task_id


def configure(live: LiveService, creds: Creds, task_id: str, source: dict[str, Any],
              target: dict[str, Any], method: str = "full_amount_migration") -> Any:
    body = {"migration_method": method, "resume_mode": "auto",
            "source_instance": source, "target_instance": target}
    return signed(live, creds, "POST", f"/v2/{creds.project_id}/migration/{task_id}/task", json_body=body)


def assert_unreachable(r: Any, field: str) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "DCS.4063", r.text
    assert r.json()["error_msg"] == UNREACHABLE_MSG.format(field=field), r.text


@pytest.fixture
def policed(service_factory: Any, tmp_path: Path) -> tuple[LiveService, Creds, Creds]:
    """A service allowed 127.0.0.1 and 127.0.0.3; project NARROW only 127.0.0.3."""
    settings = make_settings(
        tmp_path,
        allowed_networks=["127.0.0.1/32", "127.0.0.3/32"],
        project_networks={NARROW: ["127.0.0.3/32"]},
    )
    live: LiveService = service_factory(settings)
    return live, live.credentials(), live.credentials(NARROW)


def test_outside_the_networks_nothing_is_connected(policed: Any, listeners: Any, redis_factory: Any) -> None:
    live, creds, _ = policed
    outside = listeners("127.0.0.2")
    target = redis_factory("np-target")
    assert_unreachable(register(live, creds, outside.addrs), "addrs")
    r = register(live, creds, f"127.0.0.1:{target.port}")
    assert r.status_code == 200, r.text
    target_id = r.json()["instance_id"]
    task_id = online_task(live, creds)
    assert_unreachable(configure(live, creds, task_id, {"addrs": outside.addrs}, {"id": target_id}),
                       "source_instance")
    assert_unreachable(configure(live, creds, task_id, {"addrs": f"127.0.0.1:{target.port}"},
                                 {"addrs": outside.addrs}), "target_instance")
    legacy = {"task_name": "legacy-np", "migration_type": "online_migration",
              "migration_method": "full_amount_migration", "source_instance": {"addrs": outside.addrs},
              "target_instance": {"id": target_id}}
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/migration-task", json_body=legacy)
    assert_unreachable(r, "source_instance")
    # An IPv4-mapped spelling of the same address is the same address.
    assert_unreachable(register(live, creds, f"[::ffff:127.0.0.2]:{outside.port}"), "addrs")
    assert outside.pending() == 0
    shown = signed(live, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}")
    assert shown.json()["status"] == "RUNNING"
    # The control: an allowed listener does get the connection the check makes.
    inside = listeners("127.0.0.3")
    assert_unreachable(register(live, creds, inside.addrs), "addrs")  # it never answers INFO
    assert inside.pending() == 1


def test_a_project_s_own_networks_narrow_the_service_s(policed: Any, redis_factory: Any) -> None:
    live, creds, narrow = policed
    server = redis_factory("np-shared")
    counter = server.client()
    before = connections(server, counter)
    assert_unreachable(register(live, narrow, f"127.0.0.1:{server.port}"), "addrs")
    # A host name is checked by what it resolves to (127.0.0.1, and ::1 where it resolves so).
    assert_unreachable(register(live, narrow, f"localhost:{server.port}"), "addrs")
    assert connections(server, counter) == before
    r = register(live, creds, f"127.0.0.1:{server.port}")
    assert r.status_code == 200, r.text
    assert connections(server, counter) == before + 1
    # The other project's instance is not the narrow one's to use, nor to learn about.
    r = signed(live, narrow, "GET", f"/v2/{narrow.project_id}/instances/{r.json()['instance_id']}")
    assert r.status_code == 404


def test_every_unusable_endpoint_reads_alike(
    policed: Any, listeners: Any, redis_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    live, creds, _ = policed
    caplog.set_level(logging.WARNING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    silent = listeners("127.0.0.1")  # accepts (the kernel does) but never answers
    outside = listeners("127.0.0.2")
    cases = {
        "closed port": closed,
        "silent port": silent.addrs,
        "not redis (the service's own HTTP port)": f"127.0.0.1:{live.port}",
        "not allowed": outside.addrs,
    }
    answers = {name: register(live, creds, addrs) for name, addrs in cases.items()}
    bodies = {name: (r.status_code, r.json()) for name, r in answers.items()}
    assert len({repr(b) for b in bodies.values()}) == 1, bodies
    assert_unreachable(answers["not allowed"], "addrs")
    source = redis_factory("np-alike")
    task_id = online_task(live, creds)
    good = {"addrs": f"127.0.0.1:{source.port}"}
    texts = {name: configure(live, creds, task_id, {"addrs": addrs}, good).json()
             for name, addrs in cases.items()}
    assert len({repr(t) for t in texts.values()}) == 1, texts
    # The operator's log says what happened; the caller's answer never did.
    logged = caplog.text
    for detail in ("Errno 111", "did not answer", 'got "H"', "outside the allowed networks"):
        assert detail in logged, (detail, logged)
        assert all(detail not in str(b) for b in bodies.values())


def test_a_run_after_the_networks_narrowed_connects_nowhere(
    service_factory: Any, tmp_path: Path, redis_factory: Any, sdk: Any
) -> None:
    """Configured while allowed, resumed after a restart with narrower networks: the run, the
    resume and a backup all refuse before a packet; the task log says only "cannot be reached"."""
    v2 = sdk.v2
    first: LiveService = service_factory(make_settings(tmp_path), executor=FakeExecutor())
    creds = first.credentials()
    source, target = redis_factory("np-run-src"), redis_factory("np-run-tgt")
    r = register(first, creds, f"127.0.0.1:{target.port}")
    target_id = r.json()["instance_id"]
    task_id = online_task(first, creds)
    r = configure(first, creds, task_id, {"addrs": f"127.0.0.1:{source.port}"}, {"id": target_id},
                  method="incremental_migration")
    assert r.status_code == 200, r.text
    client = sdk.client(first.url, creds)
    show = v2.ShowMigrationTaskRequest(task_id=task_id)
    wait_for(lambda: client.show_migration_task(show).status == "INCRMIGEATING")
    first.stop()  # the task stays active: the next start resumes it
    counters = [(s, s.client()) for s in (source, target)]
    before = [connections(s, c) for s, c in counters]

    second: LiveService = service_factory(make_settings(tmp_path, allowed_networks=["127.0.0.3/32"]))
    client = sdk.client(second.url, creds)
    wait_for(lambda: client.show_migration_task(show).status == "FAILED", timeout=30)
    shown = signed(second, creds, "GET", f"/v2/{creds.project_id}/migration-task/{task_id}")
    error = shown.json()["error_message"]
    backup_id = client.copy_instance(
        v2.CopyInstanceRequest(instance_id=target_id, body=v2.BackupInstanceBody(remark="np"))
    ).backup_id

    def backup() -> Any:
        rows = client.list_backup_records(v2.ListBackupRecordsRequest(instance_id=target_id))
        row = next(b for b in rows.backup_record_response if b.backup_id == backup_id)
        return row if row.status in ("succeed", "failed") else None

    record = wait_for(backup)
    assert [connections(s, c) for s, c in counters] == before
    assert record.status == "failed"
    logs = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id))
    said = [str(line.message) for line in logs.migration_logs]
    assert error.endswith(": the instance cannot be reached"), error
    assert any("cannot be reached" in m for m in said), said
    for text in [error, *said]:
        assert "Errno" not in text and "allowed networks" not in text and "refused" not in text, text
