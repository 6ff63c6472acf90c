"""The service half of `make demo`: an incremental online migration driven through the official
DCS SDK against `cachemigrate serve` (SQLite), while a writer keeps changing the source."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from cachemigrate.engine.verify import VerifyReport, verify
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.service.auth import SignedRequest, sign

PROJECT = "0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


class Service:
    """`cachemigrate serve` in a subprocess with its own data dir (SQLite) and dev-mode key."""

    def __init__(self, cli: str, work: Path, env: dict[str, str] | None = None) -> None:
        self.cli = cli
        # The demo's redis-servers listen on 127.0.0.1: the only network the service may reach
        # (the default allows all of loopback; said here as an operator would say it).
        self.env = {**os.environ, "CACHEMIGRATE_DATA_DIR": str(work / "service"),
                    "CACHEMIGRATE_DEV_MODE": "true", "HOME": str(work / "home"),
                    "CACHEMIGRATE_ALLOWED_NETWORKS": "127.0.0.1/32", **(env or {})}
        (work / "home").mkdir(exist_ok=True)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = subprocess.run([cli, "credentials", "create", "--project-id", PROJECT], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        self.ak, self.sk = fields["access_key"], fields["secret_key"]
        self.log = open(work / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([cli, "serve", "--port", str(self.port)], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _wait(self._up, 30, "the service to answer")

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def signed_headers(self, method: str, path: str, query: str, body: bytes,
                       extra: dict[str, str] | None = None) -> dict[str, str]:
        """The headers of a request signed as the SDK signs it (``extra`` signed too)."""
        headers = {
            "content-type": "application/json;charset=utf-8", "host": urlsplit(self.url).netloc,
            "x-project-id": PROJECT, "x-sdk-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            **{k.lower(): v for k, v in (extra or {}).items()},
        }
        req = SignedRequest(method, path, query, list(headers.items()), body)
        headers["authorization"] = sign(req, access_key=self.ak, secret_key=self.sk, signed=sorted(headers))
        return headers

    def signed(self, method: str, path: str, body: Any) -> Any:
        raw = json.dumps(body).encode()
        headers = self.signed_headers(method, path, "", raw)
        r = httpx.request(method, self.url + path, content=raw, headers=headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def sdk_client(self) -> Any:
        os.environ["HOME"] = self.env["HOME"]  # the SDK writes under ~ when imported
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkdcs import v2

        return v2, v2.DcsClient.new_builder().with_credentials(
            BasicCredentials(self.ak, self.sk, PROJECT)).with_endpoints([self.url]).build()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


class Writer(threading.Thread):
    """Keeps writing to the source: new keys, counters, lists, deletes, expiries."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.ops = 0
        self.halt = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        c = self.client
        while not self.halt.is_set():
            p = c.pipeline(transaction=False)
            for _ in range(50):
                i = rng.randrange(5000)
                op = rng.randrange(6)
                if op == 0:
                    p.set(f"demo:live:{i}", rng.random())
                elif op == 1:
                    p.incr(f"demo:counter:{i % 50}")
                elif op == 2:
                    p.rpush(f"demo:list:{i % 20}", i)
                elif op == 3:
                    p.delete(f"demo:live:{i}")
                elif op == 4:
                    p.hincrby("demo:hash", f"f{i % 100}", 1)
                else:
                    p.set(f"demo:ttl:{i}", "x", px=rng.randint(60_000, 600_000))
            p.execute()
            self.ops += 50
            time.sleep(0.01)


def run(cli: str, work: Path, source: Any, target: Any, step: Callable[[str], None],
        held: list[Any] | None = None) -> bool:
    """The migration; with ``held`` (a list) the service stays up: (service, task ID) is appended
    for ``show_console``, which stops it."""
    step(f"starting `cachemigrate serve` (SQLite in {work / 'service'})")
    svc = Service(cli, work)
    print(f"service at {svc.url}; AK {svc.ak} for project {PROJECT}")
    try:
        inst = svc.signed("POST", f"/v2/{PROJECT}/instances",
                          {"name": "demo-target", "addrs": f"127.0.0.1:{target.port}"})
        v2, client = svc.sdk_client()
        step("creating an incremental online migration through the DCS SDK")
        task_id = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(name="demo-online", vpc_id="local", subnet_id="local",
                                                  security_group_id="local"))).instance_id
        writer = Writer(source.client())
        writer.start()
        res = client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
            task_id=task_id, body=v2.SetOnlineMigrationTaskBody(
                migration_method="incremental_migration", resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source.port}"),
                target_instance=v2.ConfigMigrationInstanceBody(id=inst["instance_id"]))))
        print(f"task {task_id}: {res.status}")

        def show() -> str:
            return str(client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status)

        _wait(lambda: show() in ("INCRMIGEATING", "FAILED"), 300, "the full phase")
        if show() == "FAILED":
            raise RuntimeError("the migration task failed")
        for _ in range(3):
            s = client.show_migration_task_stats(v2.ShowMigrationTaskStatsRequest(task_id=task_id))
            print(f"stats: full progress {s.full_migration_progress}%, source keys {s.source_dbsize}, "
                  f"target keys {s.target_dbsize}, target ops/s {s.target_ops}, "
                  f"target KB/s {s.target_input_kbps}, offset {s.offset}, migrating {s.is_migrating}; "
                  f"writer ops so far {writer.ops}")
            time.sleep(1)
        step("stopping the writer; waiting until the target has caught up")
        writer.halt.set()
        writer.join()
        src_ep, tgt_ep = Endpoint.from_url(source.url), Endpoint.from_url(target.url)
        # Convergent (engine/verify.py): a key whose TTL runs out between the reads of the two
        # sides (the writer sets TTLs of 1-10 min) is read again, not reported as a difference.
        report = VerifyReport(mode="full")

        def caught_up() -> bool:
            nonlocal report
            report = asyncio.run(verify(src_ep, tgt_ep))
            return report.ok

        try:
            _wait(caught_up, 120, "the target to match the source")
        except RuntimeError:
            print(f"last compare: {report.keys_compared} keys, mismatches {report.by_kind}: "
                  f"{report.examples[:5]}")
            raise
        stopped = client.stop_migration_task(v2.StopMigrationTaskRequest(task_id=task_id))
        _wait(lambda: show() == "TERMINATED", 60, "the task to stop")
        print(f"task stopped ({stopped.status} -> TERMINATED)")
        logs = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=5))
        for e in logs.migration_logs:
            print(f"  log: {e.log_level} {e.log_code} {e.message}")
        step("comparing every key after the stop")
        report = asyncio.run(verify(src_ep, tgt_ep))
        print(f"keys compared: {report.keys_compared:,}; mismatches {report.mismatches}, "
              f"converged on a re-check {report.converged}; {writer.ops:,} writes applied while migrating")
        for m in report.examples[:10]:
            print(f"  db {m.db} {m.key!r}: {m.reason}")
        if held is not None:
            held.append((svc, task_id))
        return report.ok
    finally:
        if held is None or not held:
            svc.stop()


def show_console(held: tuple[Service, str], source: Any, step: Callable[[str], None]) -> None:
    """`make demo CONSOLE=1`: the migration again (restarted, with the writer on the source) and
    the console's address with a sign-in token, until Ctrl-C."""
    svc, task_id = held
    step("the web console: the online migration runs again, with a writer on the source")
    r = svc.signed("POST", f"/v2/{PROJECT}/migration-tasks/batch-restart", {"migration_tasks": [task_id]})
    if r["migration_tasks"][0]["result"] != "success":
        raise RuntimeError(f"cannot restart the task: {r['migration_tasks'][0]}")
    writer = Writer(source.client())
    writer.start()
    token = svc.signed("POST", f"/v2/{PROJECT}/auth/tokens", {})
    console = f"{svc.url}/console/"
    print(f"console:     {console}")
    print(f"sign in:     {console}#/signin?project={PROJECT}&token={token['token']}")
    print(f"  (or on the sign-in page: project ID {PROJECT} and that token)")
    print(f"the task:    {console}#/task/{task_id}  (token valid until {token['expires_at']})")
    print("Open the sign-in link in a browser on this machine; Ctrl-C ends the demo.", flush=True)

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` ends it as Ctrl-C does: everything stopped
    signal.signal(signal.SIGINT, interrupt)  # also when started where SIGINT was ignored (nohup, &)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping the writer and the service")
    finally:
        writer.halt.set()
        writer.join()
        svc.stop()
