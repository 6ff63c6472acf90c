"""Full + incremental online migration under a concurrent writer, compared key by key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from online_workload import FAST, Online, Workload, check_equal, seed

from cachemigrate.engine.status import Phase
from support.servers import RedisServer, server_binary


@pytest.mark.parametrize("diskless", [False, True])
async def test_full_then_incremental_under_writes(
    redis_factory: Callable[..., RedisServer], diskless: bool
) -> None:
    args = ["--repl-diskless-sync", "yes" if diskless else "no", "--repl-diskless-sync-delay", "0"]
    source = redis_factory("src", password="pw", args=args)
    target = redis_factory("dst")
    seed(source.client())
    writer = Workload(source.port, "pw", pause=0.0005)
    writer.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await writer.more(500)  # writes during the incremental phase
        ops = writer.stop()
        assert ops > 100
        snap = await online.wait_applied(source.client())
        assert snap.source_offset is not None
        await online.wait_for(lambda s: s.caught_up, timeout=10)
        result = check_equal([source.client()], [target.client()])
        assert result.compared > 500
    finally:
        writer.stop_event.set()
        final = await online.finish()
    assert final.phase is Phase.STOPPED
    assert final.resumes_continue == 0 and final.resumes_fullresync == 0
    assert final.keys_failed == 0, online.sink.logs[-5:]


async def test_full_only_ends_by_itself(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    online = Online(source.url, target.url, incremental=False)
    final = await asyncio.wait_for(online.task, 30)
    assert final.phase is Phase.DONE
    check_equal([source.client()], [target.client()])
    cp = await online.store.load()
    assert cp is not None and cp.phase == "incremental" and cp.source == f"127.0.0.1:{source.port}"


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("redis6", "redis7"), ("valkey8", "redis7"), ("redis7", "valkey8"), ("valkey8", "valkey8")],
)
async def test_full_then_incremental_across_servers(
    redis_factory: Callable[..., RedisServer], source_kind: str, target_kind: str
) -> None:
    source = redis_factory("src", binary=server_binary(source_kind), args=FAST)
    target = redis_factory("dst", binary=server_binary(target_kind))
    seed(source.client(), n=100)
    writer = Workload(source.port, pause=0.001)
    writer.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await writer.more(300)  # writes during the incremental phase
        writer.stop()
        await online.wait_applied(source.client())
        await online.wait_for(lambda s: s.caught_up, timeout=10)
        result = check_equal([source.client()], [target.client()])
        assert result.compared > 200
    finally:
        writer.stop_event.set()
        final = await online.finish()
    assert final.keys_failed == 0 and final.commands_failed == 0, online.sink.logs[-5:]
    assert final.resumes_fullresync == 0
