"""The comparator finds every kind of difference between two real servers, and none when equal."""

import asyncio
from collections.abc import Callable

from cachemigrate.engine.compare import compare
from cachemigrate.engine.differences import Kind
from cachemigrate.protocol.endpoint import Endpoint
from support.poll import wait_until
from support.servers import RedisServer


def _fill(server: RedisServer) -> None:
    c = server.client()
    c.set(b"s", b"v\x00\xff")
    c.rpush(b"l", b"a", b"b", b"a")
    c.sadd(b"set", b"x", b"y")
    c.zadd(b"z", {b"m1": 0.1, b"m2": -1e300})
    c.hset(b"h", mapping={b"f": b"1", b"g": b"2"})
    c.xadd(b"st", {b"a": b"1"}, id=b"1-1")
    c.xgroup_create(b"st", b"g1", id=b"0")
    c.pexpireat(b"s", 1893456000000)
    c1 = server.client(db=3)
    c1.set(b"in3", b"x")


def _run(src: RedisServer, tgt: RedisServer):  # type: ignore[no-untyped-def]
    return asyncio.run(compare(Endpoint.from_url(src.url), Endpoint.from_url(tgt.url)))


def test_identical_servers_match(source_redis: RedisServer, target_redis: RedisServer) -> None:
    _fill(source_redis)
    _fill(target_redis)
    report = _run(source_redis, target_redis)
    assert report.ok, report.examples
    assert report.keys_compared == 7
    assert report.by_db == {0: 6, 3: 1}


def test_every_difference_is_found(source_redis: RedisServer, target_redis: RedisServer) -> None:
    _fill(source_redis)
    _fill(target_redis)
    t = target_redis.client()
    t.zadd(b"z", {b"m1": 0.1000000001})  # value
    t.pexpireat(b"s", 1893456000000 + 5000)  # ttl beyond tolerance
    t.delete(b"l")  # missing
    t.set(b"surplus", b"1")  # extra
    t.xgroup_setid(b"st", b"g1", id=b"1-1")  # stream group state
    target_redis.client(db=3).delete(b"in3")
    target_redis.client(db=3).hset(b"in3", b"f", b"x")  # type
    report = _run(source_redis, target_redis)
    reasons = sorted(m.reason for m in report.examples)
    assert report.missing == 1
    assert report.extra == 1
    assert report.mismatched == 4, reasons
    assert "type string vs hash" in reasons
    assert any(r.startswith("ttl ") for r in reasons)


def test_expired_keys_not_yet_reclaimed_are_not_extra(source_redis: RedisServer,
                                                     redis_factory: Callable[..., RedisServer]) -> None:
    """INFO's key count holds expired keys until they are reclaimed: they are no difference, and
    a real surplus key is named."""
    target_redis = redis_factory("target", args=["--enable-debug-command", "local"])
    _fill(source_redis)
    _fill(target_redis)
    t = target_redis.client()
    t.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")  # expired keys stay counted
    for i in range(20):
        t.set(f"gone:{i}".encode(), b"x", px=1)
    t.set(b"surplus", b"1")
    set_at = t.time()  # the server's clock: its keys set with px=1 are expired 2 ms later
    wait_until(lambda: t.time() >= (set_at[0], set_at[1] + 2000), what="2 ms on the target's clock")
    report = _run(source_redis, target_redis)
    assert report.extra == 1 and report.missing == 0 and report.mismatched == 0, report.examples
    assert [(m.key, m.reason) for m in report.examples] == [(b"surplus", "extra in target")]


def test_equal_values_in_other_encodings_match(redis_factory: Callable[..., RedisServer]) -> None:
    """DUMP payloads differ (listpack vs hash table, another field order, intset vs hash table):
    the values are read and they are equal."""
    source = redis_factory("source")
    target = redis_factory("target", args=["--hash-max-listpack-entries", "0",
                                          "--set-max-intset-entries", "0"])
    s, t = source.client(), target.client()
    s.hset(b"h", mapping={b"a": b"1", b"b": b"2"})
    t.hset(b"h", mapping={b"b": b"2", b"a": b"1"})
    s.sadd(b"ints", 1, 2, 3)
    t.sadd(b"ints", 3, 2, 1)
    s.zadd(b"z", {b"x": 1.5})
    t.zadd(b"z", {b"x": 1.5})
    assert s.dump(b"h") != t.dump(b"h") and s.dump(b"ints") != t.dump(b"ints")
    report = _run(source, target)
    assert report.ok and report.keys_compared == 3, report.examples
    t.hset(b"h", b"a", b"changed")
    report = _run(source, target)
    assert report.mismatched == 1 and report.examples[0].kind is Kind.VALUE


def test_a_target_without_dump_is_compared_by_value(
    source_redis: RedisServer, redis_factory: Callable[..., RedisServer]
) -> None:
    target = redis_factory("target", args=["--rename-command", "DUMP", ""])
    _fill(source_redis)
    _fill(target)
    report = _run(source_redis, target)
    assert report.ok and report.keys_compared == 7, report.examples
    target.client().rpush(b"l", b"more")
    report = _run(source_redis, target)
    assert (report.mismatched, report.examples[0].key) == (1, b"l")
