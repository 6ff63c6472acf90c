"""The distributed mode for tests: `cachemigrate serve` and `cachemigrate worker` processes (the
real CLI, subprocesses) on one PostgreSQL schema of their own and one RabbitMQ queue of their own
(so tests running in parallel never meet), with a short lease.

    with Cluster(tmp_path, buckets=...) as cluster:
        s1, s2 = cluster.serve("s1"), cluster.serve("s2")
        w1 = cluster.worker("w1")
        w2 = cluster.worker("w2", database_url=<through a relay>)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import psycopg
from cryptography.fernet import Fernet

from support.pg import PG_DSN, pg_schema
from support.poll import wait_until
from support.require import require

CLI = str(Path(sys.executable).with_name("cachemigrate"))
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
BROKER_HOW = "RabbitMQ on 127.0.0.1:5672 (guest/guest): .ci/run starts it with `rabbitmq-server -detached`"
PROJECT = "0123456789abcdef0123456789abcdef"


def broker_unreachable() -> str | None:
    from kombu import Connection

    try:
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return None
    except Exception as exc:
        return str(exc) or type(exc).__name__


class Proc:
    """One CLI process with its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [CLI, *self.args], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        assert self.alive(), f"{self.name} exited:\n{self.log()[-4000:]}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: nothing runs on the way out."""
        self._end(signal.SIGKILL)

    def terminate(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class Serve(Proc):
    def __init__(self, name: str, env: dict[str, str], log: Path, port: int) -> None:
        super().__init__(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        self.url = f"http://127.0.0.1:{port}"

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class Cluster:
    def __init__(self, work: Path, *, lease: float = 4.0, heartbeat: float = 1.0,
                 buckets: dict[str, Any] | None = None) -> None:
        self.work = work
        self.lease = lease
        self.heartbeat = heartbeat
        self.buckets = buckets or {}
        self.queue = f"cm-test-{uuid.uuid4().hex[:12]}"
        self.procs: list[Proc] = []
        self.extra_env: dict[str, str] = {}  # more CACHEMIGRATE_* for the processes started next
        self._stack = ExitStack()
        self.schema = ""
        self.database_url = ""

    def __enter__(self) -> Cluster:
        reason = broker_unreachable()
        require(reason is None, f"{BROKER_HOW} ({reason})")
        self.schema, self.database_url = self._stack.enter_context(pg_schema("dist"))
        self.secret = Fernet.generate_key().decode()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            for p in self.procs:  # all at once: each ends in its own time
                if p.alive():
                    assert p.proc is not None
                    p.proc.send_signal(signal.SIGTERM)
            for p in self.procs:
                p.terminate()
        finally:
            self._delete_queue()
            self._stack.close()

    def _delete_queue(self) -> None:
        from kombu import Connection

        try:
            with Connection(BROKER, connect_timeout=3) as conn:
                conn.default_channel.queue_delete(self.queue)
        except Exception as exc:  # a queue that was never declared
            print(f"queue {self.queue} not deleted: {exc}")

    def env(self, name: str, **extra: str) -> dict[str, str]:
        home = self.work / name / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HOME": str(home),
            "CACHEMIGRATE_DATA_DIR": str(self.work / name / "data"),
            "CACHEMIGRATE_SECRET_KEY": self.secret,
            "CACHEMIGRATE_EXECUTION_MODE": "distributed",
            "CACHEMIGRATE_DATABASE_URL": self.database_url,
            "CACHEMIGRATE_BROKER_URL": BROKER,
            "CACHEMIGRATE_BROKER_QUEUE": self.queue,
            "CACHEMIGRATE_LEASE_SECONDS": str(self.lease),
            "CACHEMIGRATE_HEARTBEAT_SECONDS": str(self.heartbeat),
            "CACHEMIGRATE_STATUS_INTERVAL_SECONDS": "0.5",
            "CACHEMIGRATE_STOP_GRACE_SECONDS": "5",
            "CACHEMIGRATE_BUCKETS": json.dumps(self.buckets),
        }
        env.update(self.extra_env)
        env.update(extra)
        return env

    def serve(self, name: str, **extra: str) -> Serve:
        from support.servers import free_port

        proc = Serve(name, self.env(name, **extra), self.work / f"{name}.log", free_port())
        proc.start()
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *, database_url: str | None = None, slots: int = 4) -> Proc:
        extra = {"CACHEMIGRATE_WORKER_ID": name, "CACHEMIGRATE_WORKER_SLOTS": str(slots)}
        if database_url is not None:
            extra["CACHEMIGRATE_DATABASE_URL"] = database_url
        proc = Proc(name, ["worker"], self.env(name, **extra), self.work / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        return proc

    def ready(self, *procs: Proc, timeout: float = 45) -> None:
        """Until every serve answers and every worker has a heartbeat and consumes the queue."""
        def up() -> bool:
            for p in procs:
                p.check()
                if isinstance(p, Serve):
                    if not p.answers():
                        return False
                elif "ready." not in p.log() or not self.sql(
                    "SELECT 1 FROM workers WHERE id = %s AND NOT stopped", p.name
                ):
                    return False
            return True

        wait_until(up, timeout, 0.2, what="the serves and workers to be up")

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={self.schema}") as conn:
            return list(conn.execute(query, args).fetchall())

    def owner(self, task_id: str) -> tuple[str | None, int]:
        rows = self.sql("SELECT run_by, lease_generation FROM tasks WHERE id = %s", task_id)
        return (rows[0][0], int(rows[0][1])) if rows else (None, 0)

    def cli(self, *args: str) -> str:
        out = subprocess.run([CLI, *args], env=self.env("cli"), capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def credentials(self) -> tuple[str, str, str]:
        out = self.cli("credentials", "create", "--project-id", PROJECT)
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        return PROJECT, fields["access_key"], fields["secret_key"]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in self.procs)


def seconds(start: float) -> float:
    return round(time.monotonic() - start, 2)
