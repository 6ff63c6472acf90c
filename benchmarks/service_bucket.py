"""The same bucket import as benchmarks/bucket.py, driven through the service (`cachemigrate serve`).

The service runs as a subprocess (dev mode, SQLite in a temp data dir, the moto bucket configured in
CACHEMIGRATE_BUCKETS). Each run registers a fresh empty target, creates a `backupfile_import` task
with the official SDK (AK/SK from `cachemigrate credentials create`), and polls the task every
50 ms until SUCCESS. Seconds: from the create request to the first poll that shows SUCCESS.
The service's RSS is sampled every 50 ms from /proc/<pid>/status; its VmHWM is reset before each
run (clear_refs) and read after it, so it is the kernel's exact peak during that run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bucket import MotoServer
from benchmarks.cli_run import fresh_target
from benchmarks.refs import Timing, cpu_seconds

BIN = Path(sys.executable).parent
NAME = "cachemigrate service import (s3 bucket)"
PROJECT = "0123456789abcdef0123456789abcdef"
POLL = 0.05
SAMPLE = 0.05
TIMEOUT = 900.0


def free_port() -> int:
    """A free loopback port (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


@dataclass
class ServiceTiming(Timing):
    sampled_peak_mb: float = 0.0  # highest 50 ms VmRSS sample during the run
    hwm_mb: float | None = None  # VmHWM after the run (reset before it), None if it could not be reset
    polls: int = 0


@dataclass
class ServiceRun:
    """What the service measurement adds to the table: idle RSS and every run's peaks."""

    idle_mb: float = 0.0
    runs: list[ServiceTiming] = field(default_factory=list)

    def summary(self) -> str:
        peaks = ", ".join(
            f"{t.sampled_peak_mb:.0f}/" + (f"{t.hwm_mb:.0f}" if t.hwm_mb is not None else "-")
            for t in self.runs
        )
        return (f"service RSS: idle {self.idle_mb:.0f} MB before the first task; peak per run "
                f"(VmRSS sampled every {SAMPLE * 1000:.0f} ms / VmHWM): {peaks} MB; "
                f"time = create request -> first poll showing SUCCESS (polls every {POLL * 1000:.0f} ms)")


def _proc_status_kb(pid: int, field_name: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/{pid}/status")


def _reset_hwm(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (`5` > clear_refs); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """VmRSS of ``pid`` every ``SAMPLE`` seconds in a thread; ``peak_kb`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = _proc_status_kb(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE):
            try:
                self.peak_kb = max(self.peak_kb, _proc_status_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _proc_status_kb(self.pid, "VmRSS"))
        return self.peak_kb


def _sdk(home: Path) -> Any:
    """huaweicloudsdkdcs v2, imported with HOME in a scratch directory (it writes ~/.huaweicloud)."""
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkdcs import v2
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old
    return BasicCredentials, v2


class Service:
    """`cachemigrate serve` on a free loopback port, dev settings, the moto bucket as "bench"."""

    def __init__(self, work: Path, moto: MotoServer) -> None:
        self.dir = work / "service"
        home = self.dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        bucket = {"url": "s3://bench", "projects": [PROJECT], "endpoint_url": moto.url,
                  "region": "us-east-1",
                  "access_key_id": moto.env["AWS_ACCESS_KEY_ID"],
                  "secret_access_key": moto.env["AWS_SECRET_ACCESS_KEY"], "path_style": True}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEMIGRATE_")}
        self.env.update({
            "HOME": str(home),
            "CACHEMIGRATE_DEV_MODE": "true",
            "CACHEMIGRATE_DATA_DIR": str(self.dir / "data"),
            "CACHEMIGRATE_BUCKETS": json.dumps({"bench": bucket}),
        })
        create = [str(BIN / "cachemigrate"), "credentials", "create", "--project-id", PROJECT]
        created = subprocess.run(create, env=self.env, capture_output=True, text=True, timeout=120,
                                 check=False)
        if created.returncode != 0:
            raise RuntimeError(f"credentials create failed: {created.stderr.strip()[-800:]}")
        lines = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines() if ": " in line)
        self.ak, self.sk = lines["access_key"], lines["secret_key"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "serve.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "cachemigrate"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"cachemigrate serve did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        basic, self.v2 = _sdk(home)
        self.client = (self.v2.DcsClient.new_builder()
                       .with_credentials(basic(self.ak, self.sk, PROJECT))
                       .with_endpoints([self.url]).build())

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def signed(self, method: str, path: str, body: Any) -> httpx.Response:
        """A request signed SDK-HMAC-SHA256 like the SDK (for the /instances extension)."""
        from urllib.parse import urlsplit

        from cachemigrate.service.auth import SignedRequest, sign

        raw = json.dumps(body).encode()
        hdrs = {"content-type": "application/json;charset=utf-8", "host": urlsplit(self.url).netloc,
                "x-project-id": PROJECT, "x-sdk-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}
        req = SignedRequest(method, path, "", list(hdrs.items()), raw)
        hdrs["authorization"] = sign(req, access_key=self.ak, secret_key=self.sk, signed=sorted(hdrs))
        return httpx.request(method, self.url + path, content=raw, headers=hdrs, timeout=60)

    def register(self, name: str, port: int) -> str:
        r = self.signed("POST", f"/v2/{PROJECT}/instances", {"name": name, "addrs": f"127.0.0.1:{port}"})
        if r.status_code != 200:
            raise RuntimeError(f"registering the target failed: {r.status_code} {r.text[:500]}")
        return str(r.json()["instance_id"])

    def failure(self, task_id: str, status: str) -> RuntimeError:
        v2 = self.v2
        shown = self.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))
        detail = shown.to_json_object()
        logs = self.client.list_migration_task_logs(
            v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=1000)).migration_logs or []
        lines = "\n".join(f"  {e.log_level} {e.log_code}: {e.message}" for e in logs)
        return RuntimeError(f"{NAME}: task {task_id} {status}: {detail.get('error_message')}\n{lines}\n"
                            f"serve log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def import_through_service(
    work: Path, svc: Service, keys: int, i: int, file_name: str = "dump.rdb"
) -> ServiceTiming:
    """One `backupfile_import` of s3://bench/<file_name> into a fresh empty target."""
    v2 = svc.v2
    tgt = fresh_target(work, f"svc{i}")
    try:
        target_id = svc.register(f"bench-target-{i}", tgt.port)
        body = v2.CreateMigrationTaskBody(
            task_name=f"bench-import-{i}",
            migration_type="backupfile_import",
            migration_method="full_amount_migration",
            backup_files=v2.BackupFilesBody(file_source="self_build_obs", bucket_name="bench",
                                            files=[v2.Files(file_name=file_name)]),
            target_instance=v2.TargetInstanceBody(id=target_id),
        )
        exact_hwm = _reset_hwm(svc.pid)
        sampler = RssSampler(svc.pid)
        svc_before, tgt_before = cpu_seconds(svc.pid), cpu_seconds(tgt.proc.pid)
        t0 = time.perf_counter()
        try:
            task_id = str(svc.client.create_migration_task(v2.CreateMigrationTaskRequest(body=body)).id)
            polls = 0
            while True:
                polls += 1
                status = svc.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id)).status
                if status == "SUCCESS":
                    secs = time.perf_counter() - t0
                    break
                if status in ("FAILED", "TERMINATED"):
                    raise svc.failure(task_id, status)
                if time.perf_counter() - t0 > TIMEOUT:
                    raise RuntimeError(f"{NAME}: task {task_id} still {status} after {TIMEOUT:.0f}s")
                if svc.proc.poll() is not None:
                    raise RuntimeError(f"{NAME}: the service exited:\n{svc.log_tail()}")
                time.sleep(POLL)
            cpu = {"service": cpu_seconds(svc.pid) - svc_before,
                   "target": cpu_seconds(tgt.proc.pid) - tgt_before}
        finally:
            peak_kb = sampler.stop()
        hwm = _proc_status_kb(svc.pid, "VmHWM") / 1024 if exact_hwm else None
        got = tgt.client().dbsize()
        if got != keys:
            raise RuntimeError(f"{NAME} wrote {got} keys, expected {keys}")
        return ServiceTiming(NAME, secs, cpu, peak_rss_mb=hwm if hwm is not None else peak_kb / 1024,
                             sampled_peak_mb=peak_kb / 1024, hwm_mb=hwm, polls=polls)
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)


def bench_service_import(work: Path, moto: MotoServer, keys: int, repeat: int) -> ServiceRun:
    """Start the service once, then ``repeat`` imports; the moto bucket must hold bench/dump.rdb."""
    svc = Service(work, moto)
    try:
        time.sleep(0.5)  # let start-up settle before reading the idle RSS
        info = ServiceRun(idle_mb=_proc_status_kb(svc.pid, "VmRSS") / 1024)
        for i in range(repeat):
            info.runs.append(import_through_service(work, svc, keys, i))
        return info
    finally:
        svc.stop()
