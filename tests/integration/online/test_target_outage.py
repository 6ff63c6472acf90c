"""Target outages (issue 13): resume mode auto waits for the target and resumes exactly.

Each test runs a live writer on the source (INCR counters, counted: support/counters.py, plus the
random workload), takes the target away and brings it back; the migration must end identical
(the independent comparator) with every INCR applied exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from online_workload import FAST, Online, Workload, check_equal, seed

from cachemigrate.engine import pipeline
from cachemigrate.engine.readers import sync
from cachemigrate.engine.spec import ResumeMode
from cachemigrate.engine.status import Phase, StatusSnapshot
from cachemigrate.errors import ResumeError
from support.counters import CounterWriter, fault_row
from support.servers import RedisServer

AOF = ["--appendonly", "yes", "--appendfsync", "everysec"]


def _waiting(s: StatusSnapshot) -> bool:
    return s.message.startswith("waiting for target")


def _back(s: StatusSnapshot, reconnects: int = 1) -> bool:
    return s.target_reconnects >= reconnects and not _waiting(s) and s.phase is Phase.INCREMENTAL


async def _settle(online: Online, source: RedisServer, target: RedisServer) -> int:
    await online.wait_applied(source.client())
    await online.wait_for(lambda s: s.caught_up, timeout=30)
    return check_equal([source.client(), source.client(1)], [target.client(), target.client(1)]).compared


async def _outage(
    redis_factory: Callable[..., RedisServer], *, target_args: list[str], fault: str
) -> tuple[StatusSnapshot, Online]:
    """Incremental phase under writes; the target SIGKILLed, writes go on, it is restarted."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", args=target_args)
    seed(source.client())
    counters = CounterWriter(source.port)
    workload = Workload(source.port, pause=0.001)
    counters.start()
    workload.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        down = time.monotonic()
        target.kill()
        await online.wait_for(_waiting)
        during = await counters.more(500)  # the source goes on taking writes meanwhile
        await asyncio.to_thread(target.restart)
        up = time.monotonic()
        await online.wait_for(_back, timeout=60)
        await online.wait_for(lambda s: s.caught_up, timeout=30)
        recovered = time.monotonic() - up  # back in the stream and caught up
        writes = await counters.more(300)
        counters.stop()
        workload.stop()
        compared = await _settle(online, source, target)
        lost, doubled = counters.lost_and_doubled(target.client())
    finally:
        counters.stop_event.set()
        workload.stop_event.set()
    final = await online.finish()
    fault_row(fault=fault, injected="target SIGKILL, restarted", outage_s=round(up - down, 1),
              load=f"{writes} INCR + {workload.ops} mixed ops", incr_during_outage=during,
              status=final.phase.value, recover_s=round(recovered, 1), keys_compared=compared,
              mismatches=0, lost=lost, doubled=doubled, resumes_continue=final.resumes_continue,
              resumes_fullresync=final.resumes_fullresync)
    assert (lost, doubled) == (0, 0)
    assert final.target_reconnects == 1
    # At most two snapshots were read (the source held up to ~2x its final keys): each counted once.
    assert final.keys_read < 5 * compared
    assert any("waiting for it: attempt 1" in m for _, m in online.sink.logs)
    return final, online


async def test_target_back_with_its_data_resumes_from_the_marker(
    redis_factory: Callable[..., RedisServer],
) -> None:
    final, online = await _outage(redis_factory, target_args=AOF, fault="target outage, data kept (AOF)")
    # It held its data: the stream continued (+CONTINUE from the marker), no new full sync.
    assert final.resumes_fullresync == 0 and final.resumes_continue >= 1
    assert not any("holds no offset marker" in m for _, m in online.sink.logs)


async def test_target_back_empty_gets_a_new_full_sync(redis_factory: Callable[..., RedisServer]) -> None:
    final, online = await _outage(redis_factory, target_args=[], fault="target outage, back empty")
    assert final.resumes_fullresync == 1
    assert any("holds no offset marker" in m for _, m in online.sink.logs)


async def test_target_back_from_an_older_snapshot_resumes_from_its_marker(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """The target comes back with a snapshot older than the checkpoint (it lost its last writes):
    its marker, saved with its data, says where it is; the stream continues from there."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), dbs=(0,))
    counters = CounterWriter(source.port)
    counters.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        target.client().save()  # the snapshot it will come back with
        await counters.more(500)
        # A checkpoint past the snapshot: the target's position is behind what was saved.
        offset = int(source.client().info("replication")["master_repl_offset"])
        await online.checkpoint_at(offset)
        target.kill()
        await online.wait_for(_waiting)
        await asyncio.to_thread(target.restart)  # loads dump.rdb: the older state and its marker
        await online.wait_for(_back, timeout=60)
        await counters.more(300)
        counters.stop()
        await online.wait_applied(source.client())
        await online.wait_for(lambda s: s.caught_up)
        check_equal([source.client()], [target.client()])
        assert counters.lost_and_doubled(target.client()) == (0, 0)
    finally:
        counters.stop_event.set()
    final = await online.finish()
    assert final.resumes_fullresync == 0
    assert any("it lost its last writes" in m for _, m in online.sink.logs)


async def test_target_flushed_under_the_migration_gets_a_new_full_sync(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """A FLUSHALL on the target while the migration runs (no outage): its marker goes with the
    data, the pipeline sees it and loads the target again."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client())
    counters = CounterWriter(source.port)
    workload = Workload(source.port, pause=0.001)  # with the source's own FLUSHDBs in db 1
    counters.start()
    workload.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await counters.more(300)
        flushed = time.monotonic()
        target.client().flushall()
        await online.wait_for(lambda s: s.resumes_fullresync >= 1, timeout=60)
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.caught_up, timeout=60)
        recovered = time.monotonic() - flushed
        writes = await counters.more(300)
        counters.stop()
        workload.stop()
        compared = await _settle(online, source, target)
        lost, doubled = counters.lost_and_doubled(target.client())
    finally:
        counters.stop_event.set()
        workload.stop_event.set()
    final = await online.finish()
    fault_row(fault="target flushed under the migration", injected="FLUSHALL on the target", outage_s=None,
              load=f"{writes} INCR + {workload.ops} mixed ops", status="new full sync, logged",
              recover_s=round(recovered, 1), keys_compared=compared, mismatches=0, lost=lost,
              doubled=doubled, resumes_fullresync=final.resumes_fullresync)
    assert (lost, doubled) == (0, 0)
    assert final.resumes_fullresync == 1 and final.target_reconnects == 0
    assert any("it was flushed" in m for _, m in online.sink.logs)


async def test_target_lost_during_the_full_sync_starts_it_again(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    c, dst = source.client(), target.client()
    seed(c)
    p = c.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"more:{i}", i)
    p.execute()
    # The source writes its snapshot slowly (3 ms a key: about 12 s for its 3.9k keys): the
    # target goes away in the middle of it, once it holds some of the keys. (The status comes
    # once a second and may not have said FULL yet: the phase it must not have reached is asked.)
    c.config_set("rdb-key-save-delay", 3000)
    counters = CounterWriter(source.port)
    counters.start()
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is not Phase.INCREMENTAL and int(dst.dbsize()) > 100)
        c.config_set("rdb-key-save-delay", 0)  # the next snapshot at full speed
        down = time.monotonic()
        target.kill()
        await online.wait_for(_waiting)
        during = await counters.more(300)
        await asyncio.to_thread(target.restart)
        up = time.monotonic()
        await online.wait_for(_back, timeout=90)
        await online.wait_for(lambda s: s.caught_up, timeout=30)
        recovered = time.monotonic() - up  # loaded again and caught up
        writes = await counters.more(200)
        counters.stop()
        compared = await _settle(online, source, target)
        lost, doubled = counters.lost_and_doubled(dst)
    finally:
        counters.stop_event.set()
    final = await online.finish()
    fault_row(fault="target outage during the full sync", injected="target SIGKILL, restarted empty",
              outage_s=round(up - down, 1), load=f"{writes} INCR", incr_during_outage=during,
              status=final.phase.value, recover_s=round(recovered, 1), keys_compared=compared,
              mismatches=0, lost=lost, doubled=doubled, resumes_continue=final.resumes_continue,
              resumes_fullresync=final.resumes_fullresync)
    assert (lost, doubled) == (0, 0)
    assert final.target_reconnects == 1 and final.resumes_fullresync == 1


async def test_manual_mode_fails_when_the_target_goes(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    source.client().set("k", "v")
    online = Online(source.url, target.url, resume_mode=ResumeMode.MANUAL)
    await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    target.kill()
    source.client().set("k2", "v")  # something to write to the target that is gone
    with pytest.raises(ResumeError, match=r"the target .* was lost .*resume mode is manual"):
        await asyncio.wait_for(online.task, 30)
    assert online.last is not None and online.last.phase is Phase.FAILED


async def test_stop_while_waiting_for_the_target(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop ends the wait at once: with a 10-minute backoff, only the stop can end it."""
    monkeypatch.setattr(pipeline, "BACKOFF_FIRST", 600.0)
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    source.client().set("k", "v")
    online = Online(source.url, target.url)
    await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    target.kill()
    source.client().set("k2", "v")
    await online.wait_for(_waiting)
    final = await online.finish(timeout=30)
    assert final.phase is Phase.STOPPED


async def test_stop_during_the_source_reconnect_backoff(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probed defect: a stop during the wait before reconnecting to the source waited it out."""
    monkeypatch.setattr(sync, "BACKOFF_FIRST", 600.0)
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    source.client().set("k", "v")
    online = Online(source.url, target.url)
    await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    source.kill()
    await online.wait_for(lambda s: "reconnecting in 600 s" in s.message)
    final = await online.finish(timeout=30)
    assert final.phase is Phase.STOPPED


async def test_resume_while_the_source_is_down_waits_for_it(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """A run resumed from a checkpoint (a service restart) waits for a source that is down, as
    the run before it did; and its status counts the servers' keys, not what it read itself."""
    source = redis_factory("src", args=[*FAST, "--appendonly", "yes", "--appendfsync", "always"])
    target = redis_factory("dst")
    seed(source.client())
    first = Online(source.url, target.url)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await _settle(first, source, target)
    await first.finish()
    source.kill()
    second = Online(source.url, target.url, store=first.store)
    await second.wait_for(lambda s: "source unreachable" in s.message)
    await second.wait_for(lambda s: sum("source unreachable" in m for _, m in second.sink.logs) >= 2)
    await asyncio.to_thread(source.restart)
    source.client().incr("after-restart")
    await second.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await _settle(second, source, target)
    size = int(source.client().dbsize()) + int(source.client(1).dbsize())
    await second.wait_for(lambda s: s.source_dbsize == size and s.target_dbsize == size)
    await second.finish()


async def test_dbsize_after_a_continued_resume(redis_factory: Callable[..., RedisServer]) -> None:
    """The probed defect: after a +CONTINUE resume, source_dbsize and target_dbsize were 0."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client())
    first = Online(source.url, target.url)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await _settle(first, source, target)
    await first.finish()
    source.client().set("while-stopped", 1)
    second = Online(source.url, target.url, store=first.store)
    await second.wait_for(lambda s: s.resumes_continue == 1 and s.phase is Phase.INCREMENTAL)
    await _settle(second, source, target)
    size = int(source.client().dbsize()) + int(source.client(1).dbsize())
    snap = await second.wait_for(lambda s: s.source_dbsize == size and s.target_dbsize == size)
    assert snap.keys_read == 0  # nothing was read from a snapshot: the sizes come from the servers
    await second.finish()
