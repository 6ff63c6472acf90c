"""Source failover: the source's replica is promoted and the migration is pointed at it.

The new master keeps the old one's history (its replid2), so the migration continues there with
PSYNC (+CONTINUE) and no new full sync, from the exact position the target holds (the old
source's exactly-once marker), even when the old run crashed a second after its last checkpoint.
When the history does not reach that far, a new full sync (resume mode auto) still ends identical.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from online_workload import FAST, Counters, Online, Workload, check_equal, seed

from cachemigrate.engine.checkpoint import Checkpoint, FileCheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.exactly_once import marker_key
from cachemigrate.engine.status import Phase
from support.poll import until, wait_until
from support.servers import RedisServer


def _replica_of(replica: RedisServer, master: RedisServer) -> None:
    replica.client().replicaof("127.0.0.1", master.port)
    wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
               what="the replica's link to its master")


def _in_step(replica: redis.Redis, master: redis.Redis) -> bool:
    """The replica has every byte of its master's stream (the writes are stopped)."""
    return int(replica.info("replication")["slave_repl_offset"]) == int(
        master.info("replication")["master_repl_offset"])


def _promote(replica: RedisServer) -> None:
    replica.client().execute_command("REPLICAOF", "NO", "ONE")


async def _more(counters: Counters, n: int) -> None:
    goal = counters.total + n
    await until(lambda: counters.total >= goal or counters.error, 60, what=f"{n} more INCRs")
    if counters.error is not None:
        raise counters.error


async def test_promoted_replica_continues_without_full_sync(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    a = redis_factory("a", args=FAST)
    b = redis_factory("b", args=FAST)
    target = redis_factory("dst")
    seed(a.client(), n=200)
    # After the seed: a replica that replicated XREADGROUP from the stream shows a group's
    # entries-read as nil where its master (and a copy of its RDB) has the number.
    _replica_of(b, a)
    store = FileCheckpointStore(tmp_path / "cp.json")
    counters, writer = Counters(a.client()), Workload(a.port, pause=0.001, dbs=(0,))
    counters.start()
    writer.start()
    first = Online(a.url, target.url, store=store)
    try:
        await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await _more(counters, 1500)
        # The migrator crashes under writes: its checkpoint is up to a second behind the target.
        first.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first.task
        await _more(counters, 500)  # writes nobody migrates yet
        counters.stop()
        writer.stop()
        wait_until(lambda: _in_step(b.client(), a.client()), what="the replica to have every write")

        # Failover: the old master dies, its replica takes over, the writes go on there.
        a.kill()
        _promote(b)
        after = Counters(b.client())
        after.counts = dict(counters.counts)
        after.start()
        pointed = time.monotonic()
        second = Online(b.url, target.url, store=store)
        await second.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_continue == 1)
        continued = time.monotonic() - pointed
        await _more(after, 1000)
        after.stop()
        await second.wait_applied(b.client())
        await second.wait_for(lambda s: s.caught_up, timeout=10)
        result = check_equal([b.client()], [target.client()])
        assert result.compared > 200
        after.check(target.client())  # no INCR lost or applied twice across the crash and the move
        final = await second.finish()
    finally:
        counters.stop_event.set()
        writer.stop_event.set()
    stats = b.client().info("stats")
    assert int(stats["sync_full"]) == 0 and int(stats["sync_partial_ok"]) == 1, stats
    assert final.resumes_fullresync == 0 and final.resumes_continue == 1
    logs = [m for _, m in second.sink.logs]
    assert any("continues here" in m and "replid2" in m for m in logs), logs
    # A's marker went with the first transaction on B; B's marks where the target is.
    assert target.client().get(marker_key(f"127.0.0.1:{a.port}")) is None
    assert target.client().get(marker_key(f"127.0.0.1:{b.port}")) is not None
    print("FAILOVER", json.dumps({"continued_s": round(continued, 2), "writes": writer.ops + after.total,
                                  "incrs": after.total, "keys_compared": result.compared,
                                  "sync_full_on_b": int(stats["sync_full"]),
                                  "sync_partial_ok_on_b": int(stats["sync_partial_ok"]),
                                  "logs": logs[1:3]}))


async def test_replica_behind_the_target_gets_a_new_full_sync(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # The replica was cut off (promoted) before writes the target has already applied: its
    # history does not reach the checkpoint, so B answers FULLRESYNC and the target is rebuilt.
    a = redis_factory("a", args=FAST)
    b = redis_factory("b", args=FAST)
    target = redis_factory("dst")
    seed(a.client(), n=100)
    _replica_of(b, a)
    wait_until(lambda: _in_step(b.client(), a.client()), what="the replica to have every write")
    _promote(b)
    store = FileCheckpointStore(tmp_path / "cp.json")
    first = Online(a.url, target.url, store=store)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    a.client().set("only-on-a", 1)  # applied to the target, never reached B
    await first.wait_applied(a.client())
    await first.finish()
    b.client().set("only-on-b", 1)
    second = Online(b.url, target.url, store=store)
    try:
        await second.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_fullresync == 1)
        await second.wait_applied(b.client())
        check_equal([b.client()], [target.client()])
    finally:
        final = await second.finish()
    assert target.client().get("only-on-a") is None and final.resumes_continue == 0


class _LostSaves(MemoryCheckpointStore):
    """A store whose saves never land: what a crash right after a resume leaves (the last
    checkpoint saved is still the old source's)."""

    async def save(self, checkpoint: Checkpoint) -> None:
        self.saves += 1


async def test_crash_on_the_new_master_before_its_first_checkpoint(
    redis_factory: Callable[..., RedisServer],
) -> None:
    a = redis_factory("a", args=FAST)
    b = redis_factory("b", args=FAST)
    target = redis_factory("dst")
    seed(a.client(), n=50)
    _replica_of(b, a)
    counters = Counters(a.client())
    counters.start()
    first = Online(a.url, target.url)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    await _more(counters, 500)
    counters.stop()
    await first.wait_applied(a.client())
    await first.finish()
    saved = await first.store.load()
    assert saved is not None and saved.source == f"127.0.0.1:{a.port}"
    wait_until(lambda: _in_step(b.client(), a.client()), what="the replica to have every write")
    a.kill()
    _promote(b)

    # A run on B applies writes (B's marker replaces A's in the target), then dies before any
    # checkpoint of B is saved.
    after = Counters(b.client())
    after.counts = dict(counters.counts)
    after.start()
    second = Online(b.url, target.url, store=_LostSaves(saved))
    await second.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_continue == 1)
    await _more(after, 500)
    await second.wait_applied(b.client())
    second.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second.task
    assert target.client().get(marker_key(f"127.0.0.1:{a.port}")) is None

    # The next run has only A's checkpoint: B's marker (B's own replid) says where the target is.
    third = Online(b.url, target.url, store=MemoryCheckpointStore(saved))
    try:
        await third.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.resumes_continue == 1)
        await _more(after, 500)
        after.stop()
        await third.wait_applied(b.client())
        check_equal([b.client()], [target.client()])
        after.check(target.client())  # nothing applied twice although the checkpoint is A's
    finally:
        after.stop_event.set()
        final = await third.finish()
    assert final.resumes_fullresync == 0
    assert int(b.client().info("stats")["sync_full"]) == 0
    assert any("the target has applied up to offset" in m for _, m in third.sink.logs), third.sink.logs
