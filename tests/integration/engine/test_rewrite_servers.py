"""The transform against real servers: DUMP a key from a Redis 7.0 source, run the transform
(RESTORE fast path or command rewrite), send the entries to the target, compare with the source."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.errors import DumpPayloadError
from cachemigrate.formats.dump import build_payload, parse_payload
from cachemigrate.formats.rdb.model import (
    NO_EXPIRE,
    HashValue,
    KeyRecord,
    RdbHeader,
)
from support.compare import expire_at
from support.servers import RedisServer, require_redis6
from support.wire import full_argv

REDIS70 = TargetCaps(rdb_version=10, vendor="redis", version=(7, 0, 15))
REDIS60 = TargetCaps(rdb_version=9, vendor="redis", version=(6, 0, 9))
SCORES = [0.1, 1e-300, 1.7976931348623157e308, float("inf"), float("-inf"), -0.0, 5e-324, -2.5, 1e16]


def _source(factory: Callable[..., RedisServer]) -> RedisServer:
    return factory("source", args=["--enable-debug-command", "yes"])


def fill(c: redis.Redis) -> list[bytes]:
    """One key per type and encoding a Redis 7.0 server writes; returns the key names."""
    c.set(b"str:int", 12345)
    c.set(b"str:emb", b"short\x00\xff")
    c.set(b"str:raw", b"r" * 100)
    c.set(b"str:lzf", b"abc" * 5000)  # DUMP compresses it
    c.set(b"str:ttl", b"v", px=3_600_000)
    c.rpush(b"list:lp", b"a", b"1", b"-7", b"x" * 70)
    c.config_set("list-max-listpack-size", 4)
    c.rpush(b"list:nodes", *[b"e%d" % i for i in range(23)])
    c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", 200)
    c.rpush(b"list:plain", b"small", b"P" * 500, b"tail")
    c.sadd(b"set:int", 1, 2, -3, 1 << 40)
    c.sadd(b"set:ht", b"a", b"b", b"c" * 80)
    c.zadd(b"zset:lp", {b"m%d" % i: s for i, s in enumerate(SCORES)})
    c.config_set("zset-max-listpack-entries", 2)
    c.zadd(b"zset:sl", {b"m%d" % i: s for i, s in enumerate(SCORES)})
    c.hset(b"hash:lp", mapping={b"f1": b"v1", b"n": 7, b"e": b""})
    c.config_set("hash-max-listpack-entries", 2)
    c.hset(b"hash:ht", mapping={b"f%d" % i: b"v%d" % i for i in range(10)})
    c.pexpireat(b"hash:ht", int(time.time() * 1000) + 7_200_000)
    fill_stream(c)
    return sorted(c.keys())


def same_config(c: redis.Redis) -> None:
    """The encoding limits fill() ends with: a loading server re-encodes small skiplists as listpacks,
    and a listpack stores the score -0.0 as the integer 0."""
    c.config_set("list-max-listpack-size", 4)
    c.config_set("zset-max-listpack-entries", 2)
    c.config_set("hash-max-listpack-entries", 2)


def fill_stream(c: redis.Redis) -> None:
    for i in range(1, 8):
        c.xadd(b"stream", {b"f": b"v%d" % i, b"g": b"x"}, id=b"%d-%d" % (1000 + i, i))
    c.xadd(b"stream", {b"other": b"fields"}, id=b"2000-0")
    c.xdel(b"stream", b"1003-3")
    c.xgroup_create(b"stream", b"g1", id=b"0")
    c.xreadgroup(b"g1", b"alice", {b"stream": b">"}, count=2)
    c.xreadgroup(b"g1", b"bob", {b"stream": b">"}, count=1)
    c.xgroup_createconsumer(b"stream", b"g1", b"idle-carol")
    c.xack(b"stream", b"g1", b"1001-1")
    c.xgroup_create(b"stream", b"g2", id=b"$")
    c.xgroup_create(b"stream", b"g3", id=b"1004-4")
    c.xreadgroup(b"g3", b"dave", {b"stream": b">"}, count=3)
    c.xreadgroup(b"g3", b"dave", {b"stream": b"0"})  # redelivery: count 2
    # An empty stream that still has a group and history.
    c.xadd(b"stream:empty", {b"a": b"1"}, id=b"5-5")
    c.xgroup_create(b"stream:empty", b"eg", id=b"0")
    c.xdel(b"stream:empty", b"5-5")


def record(c: redis.Redis, key: bytes) -> tuple[KeyRecord, int]:
    """The KeyRecord a parser would yield for this key, from DUMP + PTTL; and the footer version."""
    payload = c.dump(key)
    assert isinstance(payload, bytes)
    type_byte, raw, version = parse_payload(payload)
    at = expire_at(c, key)
    expire = NO_EXPIRE if at < 0 else at
    return KeyRecord(0, key, type_byte, raw, expire_ms=expire, offset=1, end_offset=2), version


def apply(c: redis.Redis, entries: list[Any]) -> None:
    for e in entries:
        c.execute_command(*full_argv(e))


def _pairs(x: Any) -> dict[bytes, Any]:
    return dict(zip(x[::2], x[1::2], strict=True))


def stream_state(c: redis.Redis, key: bytes) -> Any:
    full = _pairs(c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0))
    full.pop(b"radix-tree-keys")  # internal layout: depends on how the entries were inserted
    full.pop(b"radix-tree-nodes")
    groups = []
    for g in full.pop(b"groups"):
        gi = _pairs(g)
        consumers = []
        for cons in gi.pop(b"consumers"):
            ci = _pairs(cons)
            ci.pop(b"seen-time")  # set by the commands that rebuild the group: cannot be copied
            ci.pop(b"active-time", None)
            consumers.append(ci)
        gi[b"consumers"] = sorted(consumers, key=lambda ci: ci[b"name"])
        groups.append(gi)
    full[b"groups"] = groups
    full.pop(b"recorded-first-entry-id", None)
    return full


def snapshot(c: redis.Redis, key: bytes) -> Any:
    t = c.type(key)
    if t == b"string":
        v: Any = c.get(key)
    elif t == b"list":
        v = c.lrange(key, 0, -1)
    elif t == b"set":
        v = sorted(c.smembers(key))
    elif t == b"zset":
        v = [(m, s, math.copysign(1, s)) for m, s in c.zrange(key, 0, -1, withscores=True)]
    elif t == b"hash":
        v = c.hgetall(key)
    elif t == b"stream":
        v = stream_state(c, key)
    else:
        raise AssertionError(t)
    return t, v


def assert_same(src: redis.Redis, tgt: redis.Redis, key: bytes) -> None:
    assert snapshot(tgt, key) == snapshot(src, key), key
    es, et = expire_at(src, key), expire_at(tgt, key)  # absolute: a stall between them is no drift
    assert (es < 0) == (et < 0), key
    assert abs(es - et) <= 1000, key


def migrate(
    src: redis.Redis, tgt: redis.Redis, target: TargetCaps, options: PipelineOptions, keys: list[bytes]
) -> dict[bytes, list[Any]]:
    out = {}
    for key in keys:
        rec, version = record(src, key)
        t = Transformer(options, RdbHeader("REDIS", version), target)
        entries = t.key(rec)
        assert entries, (key, t.unsupported)
        apply(tgt, entries)
        out[key] = entries
    return out


def test_fast_path_into_redis7(redis_factory: Callable[..., RedisServer], target_redis: RedisServer) -> None:
    src, tgt = _source(redis_factory).client(), target_redis.client()
    keys = fill(src)
    same_config(tgt)
    tgt.set(b"str:raw", b"stale")  # REPLACE
    sent = migrate(src, tgt, REDIS70, PipelineOptions(), keys)
    for key in keys:
        assert [e.name for e in sent[key]] == [b"RESTORE"], key
        assert_same(src, tgt, key)


def test_rewrite_path_into_redis7(
    redis_factory: Callable[..., RedisServer], target_redis: RedisServer
) -> None:
    src, tgt = _source(redis_factory).client(), target_redis.client()
    keys = fill(src)
    same_config(tgt)
    tgt.rpush(b"list:lp", b"stale")  # DEL first
    sent = migrate(src, tgt, REDIS70, PipelineOptions(rewrite=True, chunk_elements=3), keys)
    for key in keys:
        assert sent[key][0].name == b"DEL", key
        assert_same(src, tgt, key)
    assert [e.name for e in sent[b"stream:empty"]] == [
        b"DEL", b"XGROUP", b"XGROUP", b"XSETID", b"XGROUP",
    ]  # fmt: skip


def test_into_redis6_relabels_what_it_can_and_rewrites_the_rest(
    redis_factory: Callable[..., RedisServer],
) -> None:
    binary = require_redis6()
    src = _source(redis_factory).client()
    tgt = redis_factory("target6", binary=binary).client()
    keys = fill(src)
    sent = migrate(src, tgt, REDIS60, PipelineOptions(), keys)
    restored = {k for k, es in sent.items() if es[0].name == b"RESTORE"}
    # RDB-9 types go as RESTORE with footer 9; listpack/quicklist-2/stream-v2 types are rewritten.
    assert {b"str:int", b"str:lzf", b"str:ttl", b"set:int", b"set:ht", b"zset:sl", b"hash:ht"} <= restored
    assert not restored & {b"list:lp", b"list:plain", b"zset:lp", b"hash:lp", b"stream"}
    for key in keys:
        if key.startswith(b"stream"):
            # 6.0 has neither entries-read nor max-deleted-entry-id: compare what it shows.
            assert tgt.xrange(key) == src.xrange(key)
            assert [g["name"] for g in tgt.xinfo_groups(key)] == [g["name"] for g in src.xinfo_groups(key)]
            for g in tgt.xinfo_groups(key):
                assert tgt.xpending(key, g["name"]) == src.xpending(key, g["name"])
        else:
            assert_same(src, tgt, key)


def test_footer_relabel_is_what_makes_restore_work(
    source_redis: RedisServer, target_redis: RedisServer
) -> None:
    src, tgt = source_redis.client(), target_redis.client()
    src.set(b"k", b"value")
    src.sadd(b"s", 1, 2, 3)
    for key in (b"k", b"s"):
        rec, _ = record(src, key)
        with pytest.raises(redis.ResponseError, match="payload version"):
            tgt.restore(key, 0, build_payload(rec.type_byte, rec.value, 11), replace=True)
        # The same bytes read from an RDB 11 file (Redis 7.2) go into 7.0 with footer 10.
        entries = Transformer(PipelineOptions(), RdbHeader("REDIS", 11), REDIS70).key(rec)
        assert parse_payload(full_argv(entries[0])[3])[2] == 10
        apply(tgt, entries)
        assert_same(src, tgt, key)
    with pytest.raises(DumpPayloadError):
        parse_payload(src.dump(b"k")[:-1] + b"\x00")  # type: ignore[operator]


def test_hash_field_ttls_are_dropped_on_a_redis7_target(target_redis: RedisServer) -> None:
    tgt = target_redis.client()
    now = int(time.time() * 1000)
    t = Transformer(PipelineOptions(), RdbHeader("REDIS", 12), REDIS70)
    value = HashValue([(b"a", b"1"), (b"b", b"2"), (b"gone", b"3")], {b"a": now + 60_000, b"gone": now - 5})
    rec = KeyRecord(0, b"h", 25, b"", expire_ms=now + 90_000)
    apply(tgt, t.rewrite(rec, value))
    assert tgt.hgetall(b"h") == {b"a": b"1", b"b": b"2"}
    assert 85_000 < tgt.pttl(b"h") <= 90_000
    assert (t.dropped_field_ttls, t.expired_fields, t.dropped_field_ttl_keys) == (1, 1, [(0, b"h")])
