"""The independent comparator (tests/support/compare.py) that migrations are judged by: it sees
every kind of difference between two real servers, and none between equal ones."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from support.compare import compare_servers
from support.servers import RedisServer, require_redis6


def _expiry() -> int:
    """An absolute expiry (ms) an hour ahead: both sides get the same one however long filling
    them took (a relative PX would differ by the time between the two fills)."""
    return int(time.time() * 1000) + 3_600_000


def _fill(c: redis.Redis, at: int) -> None:
    c.set(b"s", b"v\x00\xff")
    c.pexpireat(b"s", at)  # PEXPIREAT, not SET PXAT: Redis 6.0 has no PXAT
    c.rpush(b"l", b"a", b"b", b"a")
    c.sadd(b"set", b"x", b"y")
    c.zadd(b"z", {b"m1": 0.5, b"m2": -1e300})
    c.hset(b"h", mapping={b"f": b"1", b"g": b"2"})
    c.xadd(b"st", {b"f": b"1"}, id=b"1-1")
    c.xadd(b"st", {b"f": b"2"}, id=b"2-1")
    c.xgroup_create(b"st", b"g", id=b"0")
    c.xreadgroup(b"g", b"alice", {b"st": b">"}, count=1)
    c.xreadgroup(b"g", b"idle", {b"st": b"0"})  # a consumer with nothing pending (6.0: no CREATECONSUMER)
    redis.Redis(port=c.connection_pool.connection_kwargs["port"], db=5).set(b"in5", b"x")


CHANGES: dict[str, Callable[[redis.Redis], object]] = {
    "value": lambda t: t.rpush(b"l", b"c"),
    "type": lambda t: (t.delete(b"h"), t.set(b"h", b"1")),
    "ttl": lambda t: t.pexpire(b"s", 1_800_000),
    "ttl gone": lambda t: t.persist(b"s"),
    "missing": lambda t: t.delete(b"z"),
    "extra": lambda t: t.set(b"more", b"1"),
    "other db": lambda t: t.move(b"set", 2),
    "score": lambda t: t.zadd(b"z", {b"m1": 0.25}),
    "stream entry": lambda t: t.xadd(b"st", {b"f": b"3"}, id=b"3-1"),
    "group last id": lambda t: t.xgroup_setid(b"st", b"g", id=b"2-1"),
    "consumer": lambda t: t.xgroup_delconsumer(b"st", b"g", b"idle"),
    "pending owner": lambda t: t.xclaim(b"st", b"g", b"bob", 0, [b"1-1"]),
    "deliveries": lambda t: t.xreadgroup(b"g", b"alice", {b"st": b"0"}),
    "new group": lambda t: t.xgroup_create(b"st", b"g2", id=b"$"),
}


@pytest.mark.parametrize("server", ["redis7", "redis6"])  # PEXPIRETIME, or PTTL + TIME
def test_equal_servers_compare_equal(server: str, redis_factory: Callable[..., RedisServer]) -> None:
    binary = require_redis6() if server == "redis6" else None
    source, target = redis_factory("a", binary=binary), redis_factory("b", binary=binary)
    at = _expiry()
    _fill(source.client(), at)
    _fill(target.client(), at)
    result = compare_servers([source.client()], [target.client()])
    assert result.ok and result.compared == 7, result.summary()
    target.client().pexpireat(b"s", at - 2000)  # 2 s off: a TTL difference on either version
    assert not compare_servers([source.client()], [target.client()]).ok


def test_each_difference_is_found(source_redis: RedisServer, target_redis: RedisServer) -> None:
    at = _expiry()
    _fill(source_redis.client(), at)
    for change, make in CHANGES.items():
        target_redis.client().flushall()
        _fill(target_redis.client(), at)
        make(target_redis.client())
        result = compare_servers([source_redis.client()], [target_redis.client()])
        assert not result.ok, change
        assert len(result.mismatches) <= 2, (change, result.summary())  # other db: missing + extra


def test_a_key_expiring_between_the_reads_is_no_difference(
    source_redis: RedisServer, target_redis: RedisServer
) -> None:
    at = _expiry()
    for side in (source_redis, target_redis):
        side.client().set(b"k", b"v")
        side.client().pexpireat(b"k", at)
    source_redis.client().set(b"leaving", b"v", px=200)  # gone on the target already
    target_redis.client().set(b"arriving", b"v", px=200)  # gone on the source already
    result = compare_servers([source_redis.client()], [target_redis.client()])
    assert result.ok and result.compared == 1, result.summary()
