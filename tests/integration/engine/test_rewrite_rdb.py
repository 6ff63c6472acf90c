"""End to end through the real parser: SAVE a Redis 7.0 source, parse its RDB with a small big-key
threshold, transform every record (RESTORE, rewrite, big-key chunks, functions), apply, compare."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from test_rewrite_servers import REDIS60, REDIS70, assert_same, fill, same_config

from cachemigrate.engine.entry import Entry
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.engine.transform import TargetCaps, Transformer
from cachemigrate.formats.rdb.model import Function, KeyRecord, RdbHeader, ValueChunk
from cachemigrate.formats.rdb.parser import iter_file
from support.servers import RedisServer, require_redis6
from support.wire import full_argv

LIB = "#!lua name=mylib\nredis.register_function('hello', function() return 'hi' end)"


def _fill_big(c: redis.Redis) -> None:
    c.rpush(b"big:list", *[b"item-%d" % i for i in range(300)])
    c.sadd(b"big:set", *[b"member-%d" % i for i in range(300)])
    c.zadd(b"big:zset", {b"m%d" % i: i / 7 for i in range(300)})
    c.hset(b"big:hash", mapping={b"f%d" % i: b"v" * (i % 13) for i in range(300)})
    c.set(b"big:string", bytes(range(256)) * 4000)
    c.pexpire(b"big:zset", 600_000)
    for i in range(1, 120):
        c.xadd(b"big:stream", {b"n": i}, id=b"%d-0" % i)
    c.xgroup_create(b"big:stream", b"grp", id=b"0")
    c.xreadgroup(b"grp", b"reader", {b"big:stream": b">"}, count=5)
    c1 = redis.Redis(port=c.connection_pool.connection_kwargs["port"], db=2)
    c1.set(b"in-db2", b"x")
    c.function_load(LIB)


def _run(
    rdb: str, target: TargetCaps, options: PipelineOptions, tgt: RedisServer, big: set[bytes] | None = None
) -> Transformer:
    t: Transformer | None = None
    clients: dict[int, redis.Redis] = {}
    for r in iter_file(rdb, max_value_bytes=2000, chunk_elements=40):
        entries: list[Entry] = []
        if isinstance(r, KeyRecord):
            if t is None:
                t = Transformer(options, RdbHeader("REDIS", 10), target)
            entries = t.key(r)
            if r.big and big is not None:
                big.add(r.key)
        elif isinstance(r, ValueChunk):
            assert t is not None
            entries = t.chunk(r)
        elif isinstance(r, Function):
            t = t or Transformer(options, RdbHeader("REDIS", 10), target)
            entries = t.function(r)
        for e in entries:
            db = max(e.db, 0)
            c = clients.setdefault(db, tgt.client(db=db))
            c.execute_command(*full_argv(e))
    assert t is not None
    return t


@pytest.mark.parametrize("rewrite", [False, True])
def test_rdb_file_through_the_transform(redis_factory: Callable[..., RedisServer], rewrite: bool) -> None:
    source = redis_factory("source", args=["--enable-debug-command", "yes"])
    target = redis_factory("target")
    src = source.client()
    keys = fill(src)
    _fill_big(src)
    same_config(target.client())
    rdb = str(source.save())
    big: set[bytes] = set()
    t = _run(rdb, REDIS70, PipelineOptions(rewrite=rewrite), target, big)
    tgt = target.client()
    all_keys = sorted(src.keys())
    assert sorted(tgt.keys()) == all_keys and len(all_keys) == len(keys) + 6
    for key in all_keys:
        assert_same(src, tgt, key)
    assert source.client(db=2).get(b"in-db2") == target.client(db=2).get(b"in-db2") == b"x"
    assert tgt.fcall("hello", 0) == b"hi"
    assert t.keys_by_type["stream"] == 3 and sum(t.keys_by_type.values()) == len(all_keys) + 1
    assert {b"big:list", b"big:set", b"big:zset", b"big:hash", b"big:string"} <= big
    assert t.rewritten == (len(all_keys) + 1 if rewrite else len(big))  # big keys: always commands
    assert not t.unsupported


def test_rdb_file_into_redis6_folded(redis_factory: Callable[..., RedisServer]) -> None:
    binary = require_redis6()
    source = redis_factory("source", args=["--enable-debug-command", "yes"])
    target = redis_factory("target6", binary=binary)
    src = source.client()
    fill(src)
    _fill_big(src)
    src.delete(
        b"stream", b"stream:empty", b"big:stream"
    )  # 6.0 shows less stream state: see test_rewrite_servers
    t = _run(str(source.save()), REDIS60, PipelineOptions(db_mode=DbMode.FOLD), target)
    tgt = target.client()
    assert sorted(tgt.keys()) == sorted([*src.keys(), b"in-db2"])
    for key in src.keys():  # noqa: SIM118 (a Redis client, not a dict)
        assert_same(src, tgt, key)
    assert t.unsupported_count == 1 and "7.0" in t.unsupported[0][2]  # the function library
