"""A live cachemigrate service (uvicorn in a thread, free port) and the official SDK pointed at it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.fernet import Fernet

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore
from cachemigrate.engine.spec import PipelineSpec
from cachemigrate.engine.status import EventSink, LogLevel, Phase, StatusSnapshot
from cachemigrate.errors import MigrationError
from cachemigrate.service import serving
from cachemigrate.service.app import create_app
from cachemigrate.service.db import repo
from cachemigrate.service.settings import BucketConfig, Settings
from support.poll import wait_until

SECRET = Fernet.generate_key().decode()
PROJECT = "0123456789abcdef0123456789abcdef"  # LiveService.credentials()'s default project


CLI = str(Path(sys.executable).parent / "cachemigrate")


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The `cachemigrate` command as a user runs it (its own process)."""
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def cli_env(tmp: Path, secret: str = SECRET) -> dict[str, str]:
    return {
        **os.environ,
        "CACHEMIGRATE_SECRET_KEY": secret,
        "CACHEMIGRATE_DATA_DIR": str(tmp),
        "HOME": str(tmp),
    }


# `cachemigrate` with every logger of the process at DEBUG on stderr: what an operator sees who
# turns logging up (SQLAlchemy's statements and rows included), for tests that read the log.
CLI_DEBUG_LOGGING = [
    sys.executable,
    "-c",
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); sys.argv[0] = 'cachemigrate'; "
    "from cachemigrate.cli.app import main; main()",
]


@contextmanager
def serve_cli(
    env: dict[str, str],
    *args: str,
    url: str,
    log: Path,
    verify: Any = True,
    command: list[str] | None = None,
) -> Iterator[Any]:
    """`cachemigrate serve ARGS` in its own process, once GET ``url``/healthz answers (``verify``
    as httpx takes it, for https); SIGTERM and reaped on the way out. ``command`` replaces the
    `cachemigrate` executable (CLI_DEBUG_LOGGING)."""
    import httpx

    with log.open("ab") as out:
        argv = [*(command or [CLI]), "serve", *args]
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:

            def answers() -> bool:
                assert proc.poll() is None, f"serve exited:\n{log.read_text()[-3000:]}"
                try:
                    return httpx.get(f"{url}/healthz", verify=verify, timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, timeout=30, interval=0.1, what="cachemigrate serve to answer")
            yield proc
        finally:
            proc.terminate()
            proc.wait(20)


def fields(stdout: str) -> dict[str, str]:
    """The ``name: value`` lines a command printed."""
    return dict(line.split(": ", 1) for line in stdout.strip().splitlines() if ": " in line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Creds:
    project_id: str
    ak: str
    sk: str


@dataclass
class LiveService:
    url: str  # the tenant-facing API
    metrics_url: str  # the operator's listener (settings.metrics_port)
    settings: Settings
    app: Any
    servers: list[uvicorn.Server]
    thread: threading.Thread
    port: int

    @property
    def services(self) -> Any:
        return self.app.state.services

    def credentials(self, project_id: str = PROJECT) -> Creds:
        from cachemigrate.service.auth import new_access_key

        ak, sk = new_access_key()
        svc = self.services
        svc.db.run_sync(
            repo.add_credential, access_key=ak, project_id=project_id, secret_key_enc=svc.cipher.encrypt(sk)
        )
        return Creds(project_id, ak, sk)

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        self.thread.join(30)


@dataclass
class FakeExecutor:
    """Stands in for the engine in state-machine tests: full phase, then incremental until stopped."""

    full_seconds: float = 0.3
    fail_with: str | None = None
    specs: list[PipelineSpec] = field(default_factory=list)
    loaded: list[Checkpoint | None] = field(default_factory=list)

    async def __call__(
        self,
        spec: PipelineSpec,
        *,
        events: EventSink,
        checkpoints: CheckpointStore | None,
        stop: asyncio.Event | None,
    ) -> StatusSnapshot:
        self.specs.append(spec)
        self.loaded.append(None if checkpoints is None else await checkpoints.load())
        started = time.time()

        def snap(phase: Phase, **kw: Any) -> StatusSnapshot:
            return StatusSnapshot(
                phase=phase,
                source_kind=str(spec.source.kind),
                started_at=started,
                updated_at=time.time(),
                **kw,
            )

        events.log(LogLevel.INFO, f"fake: copying to {spec.target.address}")
        events.status(snap(Phase.FULL, keys_written=5, bytes_read=50, bytes_total=100))
        await asyncio.sleep(self.full_seconds)
        if self.fail_with:
            events.log(LogLevel.ERROR, self.fail_with)
            raise MigrationError(self.fail_with)
        if not spec.options.incremental:
            final = snap(Phase.DONE, keys_written=10, bytes_read=100, bytes_total=100)
            events.status(final)
            return final
        events.status(snap(Phase.INCREMENTAL, keys_written=10, source_offset=200, applied_offset=150))
        if checkpoints is not None:
            source = spec.source.endpoint.address if spec.source.endpoint else "files"
            await checkpoints.save(Checkpoint(source=source, replid="f" * 40, offset=150))
        assert stop is not None
        await stop.wait()
        return snap(Phase.STOPPED, keys_written=10)


@pytest.fixture(scope="session")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.SimpleNamespace]:
    """The SDK, imported with HOME in a scratch directory (it writes ~/.huaweicloud at import)."""
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.exceptions import exceptions
        from huaweicloudsdkcore.http.http_config import HttpConfig
        from huaweicloudsdkdcs import v2

        def client(url: str, creds: Creds, *, ca_file: Path | None = None) -> Any:
            """A DcsClient; over https it trusts ``ca_file`` (else the system's CAs)."""
            config = HttpConfig.get_default_config()
            config.ssl_ca_cert = None if ca_file is None else str(ca_file)
            return (
                v2.DcsClient.new_builder()
                .with_http_config(config)
                .with_credentials(BasicCredentials(creds.ak, creds.sk, creds.project_id))
                .with_endpoints([url])
                .build()
            )

        yield types.SimpleNamespace(
            v2=v2,
            client=client,
            ClientRequestException=exceptions.ClientRequestException,
            SdkException=exceptions.SdkException,
            BasicCredentials=BasicCredentials,
        )
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def make_settings(tmp: Path, **kw: Any) -> Settings:
    """Settings of a test service; its bucket "local" (tmp/bucket) serves the default PROJECT."""
    bucket = tmp / "bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "data_dir": tmp / "data",
        "secret_key": SECRET,
        "status_interval_seconds": 0.2,
        "stop_grace_seconds": 5.0,
        "buckets": {"local": BucketConfig(url=f"file://{bucket}", projects=(PROJECT,))},
    }
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., LiveService]]:
    started: list[LiveService] = []

    def start(settings: Settings | None = None, executor: Any = None) -> LiveService:
        """The service as `cachemigrate serve` runs it (service/serving.py): the API and the
        metrics listener, on free ports; each start of the same settings gets new ports."""
        settings = (settings or make_settings(tmp_path)).model_copy(
            update={"host": "127.0.0.1", "port": free_port(), "metrics_port": free_port()}
        )
        app = create_app(settings, executor=executor)
        servers = serving.servers(app, settings, log_level="warning")
        thread = threading.Thread(target=asyncio.run, args=(serving.serve(servers),), daemon=True)
        thread.start()
        wait_until(
            lambda: all(server.started for server in servers) or not thread.is_alive(),
            timeout=20,
            what="the service to start",
        )
        assert thread.is_alive(), "the service did not start"
        scheme = "https" if settings.ssl_certfile else "http"
        live = LiveService(
            url=f"{scheme}://127.0.0.1:{settings.port}",
            metrics_url=f"http://127.0.0.1:{settings.metrics_port}/metrics",
            settings=settings,
            app=app,
            servers=servers,
            thread=thread,
            port=settings.port,
        )
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def fake_executor() -> FakeExecutor:
    return FakeExecutor()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    return wait_until(predicate, timeout, interval)


@pytest.fixture
def waiter() -> Callable[..., Any]:
    return wait_for


def signed(
    live: LiveService,
    creds: Creds,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    raw: bytes | None = None,
    query: str = "",
    date: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """A raw request signed like the SDK does (for our extensions and exact wire checks)."""
    import json as _json
    from urllib.parse import urlsplit

    import httpx

    from cachemigrate.service.auth import SignedRequest, sign

    body = raw if raw is not None else (b"" if json_body is None else _json.dumps(json_body).encode())
    host = urlsplit(live.url).netloc
    hdrs = {
        "content-type": "application/json;charset=utf-8" if body else "application/json",
        "host": host,
        "user-agent": "cachemigrate-tests",
        "x-project-id": creds.project_id,
        "x-sdk-date": date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }
    req = SignedRequest(method, path, query, list(hdrs.items()), body)
    hdrs["authorization"] = sign(req, access_key=creds.ak, secret_key=creds.sk, signed=sorted(hdrs))
    hdrs.update(headers or {})
    url = f"{live.url}{path}" + (f"?{query}" if query else "")
    return httpx.request(method, url, content=body, headers=hdrs, timeout=30)
