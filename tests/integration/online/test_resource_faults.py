"""Resource faults (issue 13): a target at maxmemory (noeviction) and a source backlog overflowed
under heavy writes. Nothing is dropped silently: the task stops with the key and the server's
error, and a resume after the memory is freed ends identical with every INCR applied once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest
from online_workload import FAST, Online, check_equal, seed

from cachemigrate.engine.checkpoint import MemoryCheckpointStore
from cachemigrate.engine.status import Phase
from cachemigrate.errors import MigrationError
from support.counters import CounterWriter, fault_row
from support.servers import RedisServer

NOEVICTION = ["--maxmemory-policy", "noeviction"]
OOM = r"refused \w+ of db \d+ key '[^']+': OOM command not allowed"


def _used(server: RedisServer) -> int:
    return int(server.client().info("memory")["used_memory"])


async def test_target_full_during_the_full_sync(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", args=NOEVICTION)
    c = source.client()
    p = c.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"big:{i}", os.urandom(1000))
    p.execute()
    seed(c, dbs=(0,))
    target.client().config_set("maxmemory", _used(target) + (1 << 20))  # room for a third of it
    store = MemoryCheckpointStore()
    online = Online(source.url, target.url, store=store)
    with pytest.raises(MigrationError, match=OOM):
        await asyncio.wait_for(online.task, 60)
    logs = [m for _, m in online.sink.logs]
    assert any("refused by the target: OOM command not allowed" in m for m in logs)
    assert online.last is not None and online.last.phase is Phase.FAILED and online.last.keys_failed >= 1
    # Not a word of it counts as migrated: the checkpoint is still the full phase's.
    assert store.checkpoint is None or store.checkpoint.phase == "full"
    target.client().config_set("maxmemory", 0)
    again = Online(source.url, target.url, store=store)
    await again.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await again.wait_applied(c)
    compared = check_equal([c], [target.client()]).compared
    await again.finish()
    fault_row(fault="target at maxmemory, full sync", injected="maxmemory = used + 1 MiB, 3.5 MB snapshot",
              outage_s=None, load="full sync", status="FAILED (key and OOM error logged), then resumed",
              recover_s=None, keys_compared=compared, mismatches=0, lost=0, doubled=0)


async def test_target_full_during_the_incremental_phase(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", args=NOEVICTION)
    c = source.client()
    seed(c, dbs=(0,))
    counters = CounterWriter(source.port)
    counters.start()
    store = MemoryCheckpointStore()
    online = Online(source.url, target.url, store=store)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        target.client().config_set("maxmemory", _used(target) + (256 << 10))
        for i in range(100):  # 1 MB of new values: beyond what the target may take
            c.set(f"fill:{i}", os.urandom(10_000))
        with pytest.raises(MigrationError, match=OOM):
            await asyncio.wait_for(online.task, 60)
        assert online.last is not None and online.last.phase is Phase.FAILED
        full = time.monotonic()
        during = await counters.more(300)  # the source goes on; the target takes nothing
        target.client().config_set("maxmemory", 0)
        again = Online(source.url, target.url, store=store)
        await again.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_continue == 1)
        await counters.more(200)
        writes = counters.stop()
        await again.wait_applied(c)
        recovered = time.monotonic() - full
        compared = check_equal([c], [target.client()]).compared
        lost, doubled = counters.lost_and_doubled(target.client())
    finally:
        counters.stop_event.set()
    final = await again.finish()
    fault_row(fault="target at maxmemory, incremental", injected="maxmemory = used + 256 KiB, 1 MB written",
              outage_s=None, load=f"{writes} INCR", incr_during_outage=during,
              status="FAILED (key and OOM error), resumed from the marker", recover_s=round(recovered, 1),
              keys_compared=compared, mismatches=0, lost=lost, doubled=doubled,
              resumes_fullresync=final.resumes_fullresync)
    assert (lost, doubled) == (0, 0)
    assert final.resumes_fullresync == 0  # resumed from the marker (+CONTINUE), no new full sync


async def test_backlog_overflow_under_heavy_writes_gets_a_new_full_sync(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=[*FAST, "--repl-backlog-size", "16kb"])
    target = redis_factory("dst")
    c = source.client()
    seed(c, dbs=(0,))
    counters = CounterWriter(source.port, pause=0)
    counters.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        link_down = time.monotonic()
        assert int(c.execute_command("CLIENT", "KILL", "TYPE", "replica")) == 1
        p = c.pipeline(transaction=False)
        for i in range(200):  # 200 KB before the reader is back (0.5 s): 12 backlogs' worth
            p.set(f"gap:{i}", os.urandom(1000))
        p.execute()
        await online.wait_for(lambda s: s.resumes_fullresync >= 1)
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        writes = counters.stop()
        await online.wait_applied(c)
        await online.wait_for(lambda s: s.caught_up)
        recovered = time.monotonic() - link_down
        compared = check_equal([c], [target.client()]).compared
        lost, doubled = counters.lost_and_doubled(target.client())
    finally:
        counters.stop_event.set()
    final = await online.finish()
    assert any("answered FULLRESYNC" in m for _, m in online.sink.logs)
    fault_row(fault="source backlog overflow", injected="16 KB backlog, link cut, 200 KB written meanwhile",
              outage_s=None, load=f"{writes} INCR (no pause) + 200 x 1 KB SET", status="new full sync, "
              f"counted (resumes_fullresync={final.resumes_fullresync}) and logged",
              recover_s=round(recovered, 1), keys_compared=compared, mismatches=0, lost=lost, doubled=doubled)
    assert (lost, doubled) == (0, 0)
    assert final.resumes_fullresync >= 1
