"""Cutover and rollback of a running incremental migration, through real haproxy fronts, with a
client writing through the source's front all along: no acknowledged write lost or doubled, and
both servers equal at the end (tests/support/compare.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from online_workload import FAST, check_equal, seed

from cachemigrate.engine.checkpoint import MemoryCheckpointStore
from cachemigrate.engine.cutover import CutoverOptions, cutover
from cachemigrate.engine.fronts import Front, open_front
from cachemigrate.engine.live import LiveMigration
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import RecordingSink
from cachemigrate.engine.stream_position import ensure_backlog
from cachemigrate.engine.verify import verify as verify_keys
from cachemigrate.errors import ConfigError, CutoverError
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import ReplicationLink
from support.front_writer import FrontWriter, verify
from support.haproxy import HAProxy, start_haproxy
from support.poll import until
from support.servers import RedisServer, require_redis6


@dataclass
class Setup:
    a: RedisServer
    b: RedisServer
    hx: HAProxy
    fronts: list[Front]


@pytest.fixture
def setup(tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> Iterator[Setup]:
    a, b = redis_factory("a", args=FAST), redis_factory("b", args=FAST)
    seed(a.client())
    hx = start_haproxy(tmp_path / "haproxy", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    yield Setup(a, b, hx, [open_front(hx.url("a")), open_front(hx.url("b"))])
    hx.stop()


def migration(source: RedisServer, target: RedisServer, sink: RecordingSink) -> LiveMigration:
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(source.url)),
                        Endpoint.from_url(target.url), PipelineOptions(incremental=True))
    m = LiveMigration(spec, events=sink, store=MemoryCheckpointStore())
    m.start()
    return m


async def in_stream(m: LiveMigration) -> None:
    def known() -> bool:
        pos = m.running().applied_position()
        return pos is not None and pos.phase == "incremental"

    await until(known, what="the migration's incremental phase")


async def applied(m: LiveMigration, source: RedisServer) -> None:
    goal = int(source.client().info("replication")["master_repl_offset"])

    def there() -> bool:
        pos = m.running().applied_position()
        return pos is not None and pos.offset >= goal

    await until(there, what=f"the migration to apply offset {goal}")


async def backends(fronts: list[Front]) -> list[int]:
    return [(await f.backend()).port for f in fronts]


async def test_cutover_and_rollback_lose_and_double_nothing(setup: Setup) -> None:
    a, b, fronts = setup.a, setup.b, setup.fronts
    sink = RecordingSink()
    forward = migration(a, b, sink)
    await in_stream(forward)
    writer = FrontWriter(setup.hx.port("a")).start()
    try:
        await writer.more(500)
        reverse, report = await cutover(forward, fronts, reverse_store=MemoryCheckpointStore(),
                                        options=CutoverOptions(max_pause=10))
        assert await backends(fronts) == [b.port, a.port]
        assert report.old == f"127.0.0.1:{a.port}" and report.new == f"127.0.0.1:{b.port}"
        assert len(report.moved) == 2 and not report.failed
        assert forward.task is not None and forward.task.done()  # stopped at the pause's offset
        await writer.more(500)  # now on b, and the reverse sync carries them to a

        back, rollback = await cutover(reverse, fronts, reverse_store=MemoryCheckpointStore(),
                                       options=CutoverOptions(max_pause=10))
        assert await backends(fronts) == [a.port, b.port]
        assert rollback.reverse_from.source == f"127.0.0.1:{a.port}"
        await writer.more(500)
    finally:
        result = writer.stop()
    verdict = verify(a.client(), result)
    print(f"\ncutover paused {report.paused_ms:.1f} ms, rollback {rollback.paused_ms:.1f} ms; "
          f"{result.writes} writes at {result.rate:.0f}/s, longest gap {result.max_gap * 1000:.1f} ms, "
          f"{result.error_count} errors ({result.errors[:3]}); lost {len(verdict.lost)}, "
          f"doubled {len(verdict.doubled)}")
    assert verdict.acknowledged == result.steps > 1500
    assert verdict.ok, verdict
    # (The errors are not counted on: a client idle when its session is closed reconnects by
    # itself, redis-py's pool sees the closed socket before it sends.)

    await applied(back, a)  # b gets what was written on a after the rollback
    # Each new direction continued its server's stream where the pause fixed it: no full copy
    # (which would flush the server that was the source), no replay of an older marker's offset.
    for m in (reverse, back):
        assert m.pipeline is not None
        snap = m.pipeline.snapshot()
        assert (snap.resumes_continue, snap.resumes_fullresync) == (1, 0), sink.logs
    assert not [m for _, m in sink.logs if "FULLRESYNC" in m or "marker" in m], sink.logs
    await back.stop()
    check_equal([a.client()], [b.client()])
    assert verify(b.client(), result).ok


async def test_a_pause_that_would_last_too_long_aborts_and_puts_everything_back(setup: Setup) -> None:
    a, b, fronts = setup.a, setup.b, setup.fronts
    forward = migration(a, b, RecordingSink())
    await in_stream(forward)
    writer = FrontWriter(setup.hx.port("a")).start()
    try:
        await writer.more(300)
        with pytest.raises(CutoverError, match="aborted"):
            await cutover(forward, fronts, reverse_store=MemoryCheckpointStore(),
                          options=CutoverOptions(max_pause=0))
        assert await backends(fronts) == [a.port, b.port]
        await writer.more(300)  # a takes writes again
        await applied(forward, a)  # and the migration goes on
    finally:
        result = writer.stop()
    assert verify(a.client(), result).ok
    await applied(forward, a)
    await forward.stop()
    check_equal([a.client()], [b.client()])


async def test_keys_written_during_the_gate_are_compared_in_the_pause(setup: Setup) -> None:
    """A counter written 1,500 times a second trails on the target by some writes at every look:
    verify calls it in flight (neither a match nor a mismatch), and the cutover compares it
    exactly inside its pause; a key changed on the target behind the migration's back aborts it."""
    a, b, fronts = setup.a, setup.b, setup.fronts
    sink = RecordingSink()
    forward = migration(a, b, sink)
    await in_stream(forward)
    writer = FrontWriter(setup.hx.port("a")).start()
    try:
        await writer.more(300)
        report = await verify_keys(Endpoint.from_url(a.url), Endpoint.from_url(b.url), rounds=3, delay=0.3)
        hot = {(0, 0, b"cutover:counter"), (0, 0, b"cutover:seq")}
        assert report.ok and set(report.in_flight) <= hot, report.as_dict()

        b.client().set("str:1", "changed on the target")  # not written on a: never in flight
        with pytest.raises(CutoverError, match="differ with the writes paused"):
            await cutover(forward, fronts, reverse_store=MemoryCheckpointStore(),
                          options=CutoverOptions(max_pause=10), check_keys=[*hot, (0, 0, b"str:1")])
        assert await backends(fronts) == [a.port, b.port]  # nothing moved

        b.client().set("str:1", a.client().get("str:1") or b"")
        reverse, done = await cutover(forward, fronts, reverse_store=MemoryCheckpointStore(),
                                      options=CutoverOptions(max_pause=10), check_keys=sorted(hot))
        assert "in-flight keys equal" in dict(done.timeline), done.timeline
        assert await backends(fronts) == [b.port, a.port]
        await writer.more(300)
    finally:
        result = writer.stop()
    assert verify(b.client(), result).ok
    await applied(reverse, b)
    await reverse.stop()
    check_equal([b.client()], [a.client()])


async def test_refuses_fronts_that_point_elsewhere(
    setup: Setup, redis_factory: Callable[..., RedisServer]
) -> None:
    a, b = setup.a, setup.b
    other = redis_factory("other")
    forward = migration(a, other, RecordingSink())
    await in_stream(forward)
    with pytest.raises(CutoverError, match="neither"):
        await cutover(forward, setup.fronts, reverse_store=MemoryCheckpointStore())
    with pytest.raises(ConfigError, match="named twice"):
        await cutover(forward, [setup.fronts[0]] * 2, reverse_store=MemoryCheckpointStore())
    await forward.stop()
    assert b.client().dbsize() == 0


async def test_ensure_backlog_keeps_offsets_continuable(redis_factory: Callable[..., RedisServer]) -> None:
    """A master that never had a replica cannot continue any PSYNC; once ensure_backlog ran it
    can, from any offset it reaches later (what the reverse sync starts with)."""
    server = redis_factory("fresh")
    endpoint = Endpoint.from_url(server.url)
    c = server.client()
    c.set("before", 1)
    assert c.info("replication")["repl_backlog_active"] == 0
    assert await ensure_backlog(endpoint)
    assert not await ensure_backlog(endpoint)  # once is enough
    c.set("after", 1)
    info = c.info("replication")
    assert info["repl_backlog_active"] == 1
    link = ReplicationLink(endpoint)
    try:
        await link.connect()
        res = await link.psync(info["master_replid"], info["master_repl_offset"] + 1)
        assert not res.full
        c.set("later", "x")
        batch = await anext(link.commands())
        assert [argv for argv, _ in batch if argv[0].upper() != b"SELECT"] == [[b"SET", b"later", b"x"]]
    finally:
        await link.close()


async def test_cutover_from_redis_6_0_with_plain_client_pause(
    tmp_path: Path, redis_factory: Callable[..., RedisServer]
) -> None:
    """Redis 6.0 knows neither CLIENT PAUSE ... WRITE nor CLIENT UNPAUSE: the whole server is
    paused until the pause runs out, and the clients moved to the target before that."""
    a = redis_factory("a6", binary=require_redis6(), args=FAST)
    b = redis_factory("b7", args=FAST)
    seed(a.client(), dbs=(0,))
    hx = start_haproxy(tmp_path / "haproxy", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    try:
        fronts = [open_front(hx.url("a")), open_front(hx.url("b"))]
        forward = migration(a, b, RecordingSink())
        await in_stream(forward)
        writer = FrontWriter(hx.port("a")).start()
        try:
            await writer.more(300)
            reverse, report = await cutover(forward, fronts, reverse_store=MemoryCheckpointStore(),
                                            options=CutoverOptions(max_pause=2))
            assert "the pause runs out" in report.timeline[-1][0]
            assert await backends(fronts) == [b.port, a.port]
            await writer.more(300)
        finally:
            result = writer.stop()
        assert verify(b.client(), result).ok
        await applied(reverse, b)  # once the pause is over the reverse sync writes to a
        await reverse.stop()
        assert verify(a.client(), result).ok
        check_equal([a.client()], [b.client()])
    finally:
        hx.stop()
