"""The offset marker of exactly-once apply: a stale checkpoint resumes from it; a transaction
the target discards (EXECABORT) is sent again without one and nothing after it is lost."""

from __future__ import annotations

from collections.abc import Callable

from online_workload import FAST, Online

from cachemigrate.engine.checkpoint import MemoryCheckpointStore
from cachemigrate.engine.exactly_once import Marker, marker_key, read_marker, remove_marker
from cachemigrate.engine.status import LogLevel, Phase
from cachemigrate.protocol.endpoint import Endpoint
from support.servers import RedisCluster, RedisServer


async def test_stale_checkpoint_resumes_from_the_marker(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    src = source.client()
    src.incr("ctr")
    first = Online(source.url, target.url)
    await first.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
    src.incr("ctr")
    applied = await first.wait_applied(src)
    assert applied.applied_offset is not None
    stale = await first.checkpoint_at(applied.applied_offset)  # a periodic save at this offset
    db3 = source.client(db=3)
    for _ in range(5):  # applied, but the checkpoint never hears of it (a crash)
        src.incr("ctr")
        src.rpush("list", "x")
        db3.incr("ctr3")  # the stream ends in db 3: the marker must say so
    await first.wait_applied(src)
    first.task.cancel()
    marker = await read_marker(Endpoint.from_url(target.url), stale.source)
    assert marker is not None and marker.replid == stale.replid and marker.offset > stale.offset
    assert marker.db == 3

    db3.incr("ctr3")  # while nobody replicates: no SELECT before it in the stream
    again = Online(source.url, target.url, store=MemoryCheckpointStore(stale))
    try:
        await again.wait_for(lambda s: s.resumes_continue == 1 and s.phase is Phase.INCREMENTAL)
        await again.wait_applied(src)
        await again.wait_for(lambda s: s.caught_up)
    finally:
        await again.finish()
    assert target.client().get("ctr") == b"7"
    assert target.client().llen("list") == 5
    assert target.client(db=3).get("ctr3") == b"6"
    assert any("continuing from there" in m for _, m in again.sink.logs)


async def test_execabort_resends_the_batch_without_a_transaction(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", args=["--rename-command", "APPEND", "APPEND_OFF"])  # "unknown"
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        p = source.client().pipeline(transaction=False)  # one write: most likely one batch
        p.incr("ctr")
        p.append("s", "x")
        p.incr("ctr")
        p.execute()
        db1 = source.client(db=1)
        db1.incr("one")
        src = source.client()
        await online.wait_applied(src)
        src.incr("ctr")  # after the discarded transaction: still in the right db, once
        db1.incr("one")
        await online.wait_applied(src)
        await online.wait_for(lambda s: s.caught_up)
    finally:
        final = await online.finish()
    assert target.client().get("ctr") == b"3"
    assert target.client(db=1).get("one") == b"2"
    assert target.client().exists("s") == 0
    errors = [m for lvl, m in online.sink.logs if lvl is LogLevel.ERROR]
    assert any("APPEND" in m and "unknown command" in m for m in errors), errors
    assert any("EXECABORT" in m for _, m in online.sink.logs)
    assert any("at least once" in m for lvl, m in online.sink.logs if lvl is LogLevel.WARNING)
    assert final.commands_failed >= 1
    raw = target.client().get(marker_key(f"127.0.0.1:{source.port}"))
    assert raw is not None and Marker.decode(raw) is not None


async def test_runtime_error_inside_the_transaction_fails_one_command(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    online = Online(source.url, target.url)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        target.client().rpush("w", "a list in the target only")  # INCR w: WRONGTYPE there
        p = source.client().pipeline(transaction=False)
        p.incr("before")
        p.incr("w")
        p.incr("after")
        p.execute()
        await online.wait_applied(source.client())
    finally:
        final = await online.finish()
    t = target.client()
    assert (t.get("before"), t.get("after"), t.type("w")) == (b"1", b"1", b"list")
    errors = [m for lvl, m in online.sink.logs if lvl is LogLevel.ERROR]
    assert len(errors) == 1 and "key 'w': INCR" in errors[0] and "WRONGTYPE" in errors[0], errors
    assert final.commands_failed == 1
    assert not any("EXECABORT" in m for _, m in online.sink.logs)


async def test_marker_goes_when_the_stop_is_the_end(redis_factory: Callable[..., RedisServer]) -> None:
    """resumable=False: nothing resumes the run, so its stop removes the marker; remove_marker
    says whether there was one."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    src = source.client()
    online = Online(source.url, target.url, resumable=False)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        src.incr("ctr")
        await online.wait_applied(src)
        assert target.client().exists(marker_key(f"127.0.0.1:{source.port}")) == 1
    finally:
        await online.finish()
    assert target.client().keys() == [b"ctr"]
    assert target.client().get("ctr") == b"1"

    ep, name = Endpoint.from_url(target.url), f"127.0.0.1:{source.port}"
    target.client().set(marker_key(name), Marker("r" * 40, 1, 0).encode())
    assert await remove_marker(ep, name) is True
    assert await remove_marker(ep, name) is False
    assert target.client().dbsize() == 1


async def test_remove_marker_on_a_cluster_target_finds_none(redis_cluster: RedisCluster) -> None:
    removed = [await remove_marker(Endpoint.from_url(n.url), "10.0.0.1:6380") for n in redis_cluster.nodes]
    assert removed == [False, False, False]
