"""Resume paths: dropped links (+CONTINUE, +FULLRESYNC), a tiny backlog, a restarted process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from online_workload import FAST, Online, Workload, check_equal, seed

from cachemigrate.engine.checkpoint import Checkpoint, FileCheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.exactly_once import MARKER_PREFIX
from cachemigrate.engine.spec import ResumeMode
from cachemigrate.engine.status import Phase
from cachemigrate.errors import ResumeError
from support.servers import RedisServer, server_binary


def _kill_replicas(server: RedisServer) -> int:
    return int(server.client().execute_command("CLIENT", "KILL", "TYPE", "replica"))


async def _settle(online: Online, source: RedisServer, target: RedisServer) -> None:
    await online.wait_applied(source.client())
    await online.wait_for(lambda s: s.caught_up, timeout=10)
    check_equal([source.client()], [target.client()])


@pytest.mark.parametrize("kind", ["redis7", "valkey8"])
async def test_kill_during_incremental_continues(
    redis_factory: Callable[..., RedisServer], kind: str
) -> None:
    source = redis_factory("src", binary=server_binary(kind), args=FAST)
    target = redis_factory("dst")
    seed(source.client())
    writer = Workload(source.port, pause=0.0005)
    writer.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        for n in (1, 2):
            await writer.more(300)
            assert _kill_replicas(source) == 1
            await online.wait_for(lambda s, n=n: s.resumes_continue >= n)  # type: ignore[misc]
        await writer.more(200)
        writer.stop()
        await _settle(online, source, target)
    finally:
        writer.stop_event.set()
        final = await online.finish()
    assert final.resumes_continue == 2 and final.resumes_fullresync == 0
    assert any("+CONTINUE" in m for _, m in online.sink.logs)


async def test_tiny_backlog_forces_fullresync_and_stays_consistent(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=[*FAST, "--repl-backlog-size", "16kb"])
    target = redis_factory("dst")
    seed(source.client())
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        c = source.client()
        assert _kill_replicas(source) == 1
        # Far more than the backlog holds, before the reader is back (0.5 s backoff), with
        # deletions the target can only learn about from a new snapshot.
        p = c.pipeline(transaction=False)
        for i in range(300):
            p.set(f"gap:{i}", b"y" * 1000)
        p.delete(*[f"str:{i}" for i in range(100)])
        p.execute()
        await online.wait_for(lambda s: s.resumes_fullresync >= 1)
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        c.set("after", "resync")
        await _settle(online, source, target)
    finally:
        final = await online.finish()
    assert final.resumes_fullresync == 1
    assert target.client().get("str:5") is None


async def test_restart_from_checkpoint_continues(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client())
    cpfile = tmp_path / "cp.json"
    writer = Workload(source.port, pause=0.0005)
    writer.start()
    try:
        # 1. A clean stop (Ctrl-C) under writes: the final checkpoint is exactly what was applied.
        first = Online(source.url, target.url, store=FileCheckpointStore(cpfile))
        await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await writer.more(300)
        await first.finish()
        cp = await FileCheckpointStore(cpfile).load()
        assert cp is not None and cp.phase == "incremental"
        await writer.more(200)  # writes go on while nobody replicates

        # 2. A new process resumes from the file: +CONTINUE, nothing lost or applied twice.
        second = Online(source.url, target.url, store=FileCheckpointStore(cpfile))
        await second.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_continue == 1)
        await writer.more(300)
        writer.stop()
        await _settle(second, source, target)

        # 3. A crash (task cancelled) once quiet, then a write, then a restart.
        assert second.last is not None and second.last.applied_offset is not None
        await second.checkpoint_at(second.last.applied_offset)  # a periodic save at the final offset
        second.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second.task
        source.client().incr("ctr:{1}")
        source.client().rpush("list:1", "after-crash")
        third = Online(source.url, target.url, store=FileCheckpointStore(cpfile))
        await third.wait_for(lambda s: s.resumes_continue == 1 and s.phase is Phase.INCREMENTAL)
        await _settle(third, source, target)
        final = await third.finish()
    finally:
        writer.stop_event.set()
    assert final.resumes_fullresync == 0


async def test_manual_resume_mode_fails_clearly(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    source.client().set("k", "v")
    online = Online(source.url, target.url, resume_mode=ResumeMode.MANUAL)
    await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    _kill_replicas(source)
    with pytest.raises(ResumeError, match="resume mode is manual"):
        await asyncio.wait_for(online.task, 20)


async def test_checkpoint_of_another_source_is_refused(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    online = Online(source.url, target.url)
    await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await online.finish()
    cp = await online.store.load()
    other = redis_factory("other")
    again = Online(other.url, target.url, store=online.store)
    with pytest.raises(ResumeError, match="belongs to"):
        await asyncio.wait_for(again.task, 20)
    assert cp is not None


async def test_checkpoint_of_an_unfinished_full_sync_starts_over(
    redis_factory: Callable[..., RedisServer],
) -> None:
    # A run died inside the snapshot: the target holds part of it plus keys from before.
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    target.client().set("stale", "left over")
    cp = Checkpoint(f"127.0.0.1:{source.port}", "", 0, phase="full")
    online = Online(source.url, target.url, store=MemoryCheckpointStore(cp),
                    resume_mode=ResumeMode.MANUAL)  # a full sync was asked for: not an error
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await _settle(online, source, target)
    finally:
        final = await online.finish()
    assert target.client().get("stale") is None
    assert final.resumes_fullresync == 1


async def test_restart_keeps_the_db_the_stream_was_in(redis_factory: Callable[..., RedisServer]) -> None:
    # The master sends SELECT only when the db changes: a resumed stream must know it is in db 5.
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    db5 = source.client(db=5)
    first = Online(source.url, target.url)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    db5.set("a", 1)
    await first.wait_for(lambda s: target.client(db=5).get("a") == b"1")
    await first.finish()
    cp = await first.store.load()
    assert cp is not None and cp.extra["db"] == 5
    db5.set("b", 2)  # no SELECT in the stream for this one
    again = Online(source.url, target.url, store=first.store)
    await again.wait_for(lambda s: s.resumes_continue == 1 and target.client(db=5).get("b") == b"2")
    await again.finish()
    assert [k for k in target.client(db=0).scan_iter() if not k.startswith(MARKER_PREFIX)] == []
