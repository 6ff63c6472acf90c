"""The runner's state machine on a SQLite file, with a stand-in executor."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from cachemigrate.engine.spec import Endpoint, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, Phase, StatusSnapshot
from cachemigrate.errors import AuthError
from cachemigrate.service import states as st
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import repo
from cachemigrate.service.db.session import Database, make_engine, upgrade
from cachemigrate.service.runner import Runner
from support.poll import until as poll_until

SPEC = PipelineSpec(
    source=SourceSpec(kind=SourceKind.SYNC, endpoint=Endpoint(port=1)), target=Endpoint(port=2)
)
FAILING = PipelineSpec(
    source=SourceSpec(kind=SourceKind.SYNC, endpoint=Endpoint(port=3)), target=Endpoint(port=2)
)
STOPPING = PipelineSpec(
    source=SourceSpec(kind=SourceKind.SYNC, endpoint=Endpoint(port=4)), target=Endpoint(port=2)
)


def database(tmp_path: Path) -> Database:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent
    return Database(engine)


async def build(_task_id: str) -> PipelineSpec:
    return SPEC


def new_task(db: Database, status: str = st.FULLMIGRATING, **kw: Any) -> str:
    task = db.run_sync(
        repo.add_task,
        project_id="p",
        name="t",
        migration_type=st.ONLINE,
        status=status,
        target={"addrs": "127.0.0.1:2"},
        **kw,
    )
    return str(task.id)


def status(db: Database, task_id: str) -> str:
    task = db.run_sync(repo.get_task, project_id="p", task_id=task_id)
    assert task is not None
    return task.status


async def until(predicate: Any, timeout: float = 30.0) -> None:
    await poll_until(predicate, timeout, interval=0.02)


def snap(phase: Phase) -> StatusSnapshot:
    return StatusSnapshot(
        phase=phase,
        source_kind="sync",
        started_at=time.time(),
        updated_at=time.time(),
        keys_written=3,
        bytes_written=30,
    )


async def test_success_failure_and_logs(tmp_path: Path) -> None:
    db = database(tmp_path)
    outcomes: list[Exception | None] = [None, AuthError("WRONGPASS invalid username-password pair")]

    async def executor(spec: PipelineSpec, **kw: Any) -> StatusSnapshot:
        kw["events"].log(LogLevel.WARNING, "slow target 127.0.0.1:2")
        error = outcomes.pop(0)
        if error:
            raise error
        return snap(Phase.DONE)

    runner = Runner(db, build_spec=build, executor=executor, interval=0.05)
    ok, bad = new_task(db), new_task(db)
    runner.start(ok)
    await until(lambda: status(db, ok) == st.SUCCESS)
    runner.start(bad)
    await until(lambda: status(db, bad) == st.FAILED)
    _, logs = db.run_sync(repo.list_logs, task_id=bad, levels=["ERROR"], offset=0, limit=10)
    assert logs[0].code == "migration.error.auth" and "WRONGPASS" in logs[0].message
    _, warns = db.run_sync(repo.list_logs, task_id=ok, levels=["WARN"], offset=0, limit=10)
    assert warns[0].keyword == ["127.0.0.1:2"]
    assert runner.keys_moved == 3 and runner.bytes_moved == 30
    task = db.run_sync(repo.get_task, project_id="p", task_id=bad)
    assert task is not None and task.error_message == "WRONGPASS invalid username-password pair"
    await runner.close()


async def test_restart_while_the_previous_run_is_finishing(tmp_path: Path) -> None:
    db = database(tmp_path)
    calls: list[int] = []

    async def executor(spec: PipelineSpec, **kw: Any) -> StatusSnapshot:
        calls.append(1)
        return snap(Phase.DONE)

    runner = Runner(db, build_spec=build, executor=executor, interval=0.05)
    gate = asyncio.Event()
    conclude = runner._conclude

    async def slow_conclude(run: Any, *args: Any) -> None:
        await conclude(run, *args)
        await gate.wait()

    runner._conclude = slow_conclude  # type: ignore[method-assign]
    task_id = new_task(db)
    runner.start(task_id)
    await until(lambda: status(db, task_id) == st.SUCCESS)
    db.run_sync(repo.set_status_if, task_id=task_id, allowed=[st.SUCCESS], status=st.FULLMIGRATING)
    runner.start(task_id)  # what batch-restart does, while the first run is still being recorded
    gate.set()
    await until(lambda: len(calls) == 2 and status(db, task_id) == st.SUCCESS)
    await runner.close()


async def test_close_keeps_status_and_resume_all(tmp_path: Path) -> None:
    db = database(tmp_path)

    async def forever(spec: PipelineSpec, **kw: Any) -> StatusSnapshot:
        kw["events"].status(snap(Phase.INCREMENTAL))
        await kw["stop"].wait()
        return snap(Phase.STOPPED)

    runner = Runner(db, build_spec=build, executor=forever, interval=0.05)
    auto, manual = new_task(db), new_task(db, resume_mode="manual")
    creating, terminating = new_task(db, st.CREATING), new_task(db, st.TERMINATING)
    runner.start(auto)
    runner.start(manual)
    await until(lambda: status(db, auto) == status(db, manual) == st.INCRMIGEATING)
    await runner.close()
    assert status(db, auto) == status(db, manual) == st.INCRMIGEATING

    again = Runner(db, build_spec=build, executor=forever, interval=0.05)
    await again.resume_all()
    assert status(db, manual) == st.FAILED and status(db, creating) == st.RUNNING
    assert status(db, terminating) == st.TERMINATED
    assert again.is_running(auto) and not again.is_running(manual)
    await again.stop(auto, wait=True)
    assert status(db, auto) == st.TERMINATED
    await again.close()


def test_cipher_keeps_passwords_out_of_rows(tmp_path: Path) -> None:
    db = database(tmp_path)
    cipher = Cipher(Fernet.generate_key())
    task_id = new_task(db, target_password_enc=cipher.encrypt("hunter2"))
    task = db.run_sync(repo.get_task, project_id=None, task_id=task_id)
    assert task is not None and "hunter2" not in str(task.target_password_enc)
    assert cipher.decrypt_optional(task.target_password_enc) == "hunter2"


async def test_an_end_status_is_never_seen_without_its_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAILED, SUCCESS and TERMINATED are committed with their log line: a client that sees the
    status finds the line (the two used to be separate transactions; under load a client read
    between them)."""
    db = database(tmp_path)
    seen: dict[str, str] = {}  # log code -> the task's status as another connection sees it
    real = repo.add_logs

    def spying(session: Any, /, *, task_id: str, entries: Any) -> None:
        for _, code, _, _ in entries:
            seen[code] = status(db, task_id)  # a second connection: only what is committed
        real(session, task_id=task_id, entries=entries)

    monkeypatch.setattr(repo, "add_logs", spying)

    async def executor(spec: PipelineSpec, **kw: Any) -> StatusSnapshot:
        if spec is FAILING:
            raise AuthError("WRONGPASS invalid username-password pair")
        if spec is STOPPING:
            await kw["stop"].wait()
            return snap(Phase.STOPPED)
        return snap(Phase.DONE)

    specs: dict[str, PipelineSpec] = {}

    async def build_by_task(task_id: str) -> PipelineSpec:
        return specs[task_id]

    runner = Runner(db, build_spec=build_by_task, executor=executor, interval=0.05)
    ok, bad, stopped = new_task(db), new_task(db), new_task(db)
    specs.update({ok: SPEC, bad: FAILING, stopped: STOPPING})
    for task_id in (ok, bad, stopped):
        runner.start(task_id)
    await until(lambda: status(db, ok) == st.SUCCESS and status(db, bad) == st.FAILED)
    await runner.stop(stopped, wait=True)
    await until(lambda: status(db, stopped) == st.TERMINATED)
    await runner.close()
    assert seen["migration.full.done"] == st.FULLMIGRATING
    assert seen["migration.error.auth"] == st.FULLMIGRATING
    assert seen["migration.stop"] in (st.FULLMIGRATING, st.TERMINATING)
