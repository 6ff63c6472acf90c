"""A live cachemigrate service (uvicorn in a thread, free port) and the official SDK pointed at it."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
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
from cachemigrate.service.app import create_app
from cachemigrate.service.db import repo
from cachemigrate.service.settings import BucketConfig, Settings
from support.poll import wait_until

SECRET = Fernet.generate_key().decode()
PROJECT = "0123456789abcdef0123456789abcdef"  # LiveService.credentials()'s default project


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
    url: str
    settings: Settings
    app: Any
    server: uvicorn.Server
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
        self.server.should_exit = True
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
        from huaweicloudsdkdcs import v2

        def client(url: str, creds: Creds) -> Any:
            return (
                v2.DcsClient.new_builder()
                .with_credentials(BasicCredentials(creds.ak, creds.sk, creds.project_id))
                .with_endpoints([url])
                .build()
            )

        yield types.SimpleNamespace(
            v2=v2,
            client=client,
            ClientRequestException=exceptions.ClientRequestException,
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
        settings = settings or make_settings(tmp_path)
        app = create_app(settings, executor=executor)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", loop="asyncio"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        live = LiveService(f"http://127.0.0.1:{port}", settings, app, server, thread, port)
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
