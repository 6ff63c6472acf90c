"""engine/verify.py against real servers: a clean migration verifies; differences made behind the
migrator's back are found by kind and repaired; a live writer gives no false mismatches."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest
from online_workload import FAST, Online, Workload, seed

from cachemigrate.engine import repair as repair_module
from cachemigrate.engine.differences import Kind
from cachemigrate.engine.exactly_once import MARKER_PREFIX
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import Phase, RecordingSink
from cachemigrate.engine.verify import VerifyReport, verify
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import TargetInfo, probe_target
from support.compare import compare_servers
from support.relay import Relay
from support.servers import RedisServer, require_redis6

SIDES = (0, 1)


async def _migrate(source: RedisServer, target: RedisServer) -> None:
    """A full-only migration (SYNC) to its end."""
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(source.url)),
                        Endpoint.from_url(target.url))
    final = await run_pipeline(spec, events=RecordingSink())
    assert final.phase is Phase.DONE and final.keys_failed == 0


def _seeded(redis_factory: Callable[..., RedisServer], **kw: object) -> tuple[RedisServer, RedisServer]:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", **kw)
    seed(source.client(), n=200)
    for db in SIDES:
        source.client(db=db).persist("short")  # it would expire between the checks
    return source, target


def _equal(source: RedisServer, target: RedisServer) -> None:
    result = compare_servers([source.client(db=d) for d in SIDES], [target.client(db=d) for d in SIDES])
    assert result.ok and result.compared > 400, result.summary()


def _verify(source: RedisServer, target: RedisServer, **kw: object) -> VerifyReport:
    kw.setdefault("delay", 0.05)
    return asyncio.run(verify(Endpoint.from_url(source.url), Endpoint.from_url(target.url), **kw))  # type: ignore[arg-type]


def _tamper(target: RedisServer) -> None:
    """One difference of each kind, in db 0 and db 1."""
    t0, t1 = target.client(), target.client(db=1)
    t0.set("str:1", "changed")  # value
    t0.delete("hash:2")  # missing
    t0.set("not-in-source", "x")  # extra
    t1.pexpire("str:3", 500_000)  # ttl (no expiry on the source)
    t1.delete("list:4")
    t1.set("list:4", "now a string")  # type
    t1.zadd("zset:5", {"m5": 99.0})  # value (a score)


EXPECTED = {Kind.VALUE: 2, Kind.MISSING: 1, Kind.EXTRA: 1, Kind.TTL: 1, Kind.TYPE: 1}


def test_clean_migration_has_no_mismatch(redis_factory: Callable[..., RedisServer]) -> None:
    source, target = _seeded(redis_factory)
    asyncio.run(_migrate(source, target))
    full = _verify(source, target)
    assert full.ok and full.first_pass == {} and full.by_kind == {}, full.as_dict()
    assert full.keys_compared == sum(source.client(db=d).dbsize() for d in SIDES)
    sampled = _verify(source, target, sample=50)
    assert sampled.ok and sampled.mode == "sample" and 50 <= sampled.keys_compared < full.keys_compared
    print(f"\nclean: {full.as_dict()}")


def test_tampered_target_found_by_kind_then_repaired(redis_factory: Callable[..., RedisServer]) -> None:
    source, target = _seeded(redis_factory)
    asyncio.run(_migrate(source, target))
    _tamper(target)
    found = _verify(source, target, rounds=2)
    assert found.by_kind == EXPECTED and found.first_pass == EXPECTED, found.as_dict()
    assert found.converged == 0 and found.rounds == 2 and not found.ok
    assert {(m.db, m.key, m.kind) for m in found.examples} == {
        (0, b"str:1", Kind.VALUE), (0, b"hash:2", Kind.MISSING), (0, b"not-in-source", Kind.EXTRA),
        (1, b"str:3", Kind.TTL), (1, b"list:4", Kind.TYPE), (1, b"zset:5", Kind.VALUE),
    }
    # A sample larger than the dbs reads them whole: the same differences.
    assert _verify(source, target, sample=100_000, rounds=0).by_kind == EXPECTED
    assert not compare_servers([target.client()], [source.client()]).ok

    repaired = _verify(source, target, repair=True)
    assert repaired.ok and repaired.repaired == 6 and repaired.repair_failed == 0, repaired.as_dict()
    assert repaired.first_pass == EXPECTED
    _equal(source, target)
    assert _verify(source, target).first_pass == {}
    print(f"\ntampered: {found.as_dict()}\nrepaired: {repaired.as_dict()}")


def test_repair_into_an_older_target_takes_the_rewrite_path(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """Redis 6.0 takes no RDB 11 payload: the repair relabels or rewrites like a migration, and
    the comparison reads values where the payloads' encodings differ (ziplist vs listpack)."""
    source, target = _seeded(redis_factory, binary=require_redis6())
    asyncio.run(_migrate(source, target))
    clean = _verify(source, target)
    assert clean.ok, clean.as_dict()
    t1 = target.client(db=1)
    t1.delete("stream:1", "hash:7", "set:8", "zset:9")
    t1.hset("zset:9", "f", "v")  # type
    target.client().lpush("list:3", "extra element")
    repaired = _verify(source, target, repair=True)
    assert repaired.first_pass == {Kind.MISSING: 3, Kind.TYPE: 1, Kind.VALUE: 1}, repaired.as_dict()
    assert repaired.ok and repaired.repaired == 5 and repaired.repair_failed == 0, repaired.as_dict()
    _equal(source, target)


def test_marker_of_a_resumable_migration_is_no_difference(redis_factory: Callable[..., RedisServer]) -> None:
    source, target = _seeded(redis_factory)
    target.client().set(MARKER_PREFIX + b"{127.0.0.1:1}", b"r 1 0")
    asyncio.run(_migrate(source, target))
    assert _verify(source, target, sample=10_000).ok
    assert _verify(source, target).ok


async def test_live_writer_gives_no_false_mismatch(redis_factory: Callable[..., RedisServer]) -> None:
    """An incremental migration whose target lags by 50 ms (a relay holds its writes), a writer
    busy on the source: the first look sees writes in flight, the re-checks let them arrive."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=100)
    with Relay(target.port, delay=0.05, direction="requests") as relay:
        online = Online(source.url, f"redis://127.0.0.1:{relay.port}")
        workload = Workload(source.port, pause=0.002)
        try:
            await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL and s.caught_up, timeout=60)
            workload.start()
            await workload.more(200)
            src, dst = Endpoint.from_url(source.url), Endpoint.from_url(target.url)
            reports = []
            for _ in range(3):
                report = await verify(src, dst, rounds=10, delay=0.5)
                assert report.ok, report.as_dict()
                assert report.keys_compared > 200
                reports.append(report)
            # The comparison did see writes in flight: the rounds are what kept them out.
            assert sum(sum(r.first_pass.values()) for r in reports) > 0, [r.as_dict() for r in reports]
            # Each first-pass difference ended equal (report.ok above); most by converging, a few
            # by a later write that made both sides equal again before the re-check.
            assert 0 < sum(r.converged for r in reports) <= sum(sum(r.first_pass.values()) for r in reports)
            sampled = await verify(src, dst, sample=100, rounds=10, delay=0.5)
            assert sampled.ok, sampled.as_dict()
        finally:
            workload.stop()
            await online.finish()
    print(f"\nlive: {[r.as_dict() for r in reports]}")


def test_payloads_the_target_refuses_are_sent_as_commands(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target that takes fewer payload versions than its probe said (a proxy in front, say):
    Redis 6.0 refuses the RDB 10 payloads the repair sends, and the keys go again as commands."""
    source = redis_factory("src")
    target = redis_factory("dst", binary=require_redis6())
    s = source.client()
    s.set("s", "v", px=600_000)
    s.hset("h", mapping={"a": "1", "b": "2"})
    s.rpush("l", 1, 2, 3)
    s.zadd("z", {"m": 1.5})

    async def overstated(endpoint: Endpoint) -> TargetInfo:
        return dataclasses.replace(await probe_target(endpoint), rdb_version=10)

    monkeypatch.setattr(repair_module, "probe_target", overstated)
    sink = RecordingSink()
    report = _verify(source, target, repair=True, events=sink)
    assert report.first_pass == {Kind.MISSING: 4} and report.ok, (report.as_dict(), sink.logs)
    assert report.repaired == 4 and report.repair_failed == 0
    assert any("4 payloads refused" in m for _, m in sink.logs), sink.logs
    result = compare_servers([source.client()], [target.client()])
    assert result.ok and result.compared == 4, result.summary()


def test_keys_the_target_refuses_stay_mismatches(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src")
    target = redis_factory("dst", args=["--rename-command", "RESTORE", ""])
    source.client().set("a", "1")
    source.client().set("b", "2")
    target.client().set("b", "2")
    target.client().set("c", "3")  # extra: its DEL is taken
    sink = RecordingSink()
    report = _verify(source, target, repair=True, events=sink)
    assert report.first_pass == {Kind.MISSING: 1, Kind.EXTRA: 1}
    assert (report.repaired, report.repair_failed) == (1, 1)
    assert report.by_kind == {Kind.MISSING: 1} and not report.ok
    assert [m.key for m in report.examples] == [b"a"]
    assert any("key 'a': RESTORE" in m and "unknown command" in m for _, m in sink.logs), sink.logs
    assert target.client().exists("c") == 0
