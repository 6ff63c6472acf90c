"""Against real servers: every key's raw value equals the body of its DUMP payload (the fast path
is exact), and decoded values equal what the server returns. Redis 7.0.15 (RDB 10) and, when
installed, 6.0.9 (RDB 9: ziplist/quicklist v1 encodings) and Valkey 8.0 (RDB 11)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from cachemigrate.formats.rdb import (
    HashValue,
    KeyRecord,
    ListValue,
    RdbParser,
    SetValue,
    StreamValue,
    StringValue,
    ZSetValue,
    decode_value,
)
from support.servers import RedisServer, require_redis6, require_valkey8


def populate(c: redis.Redis) -> None:
    c.set("s:small", "hello")
    c.set("s:int", 12345)
    c.set("s:neg", -99999999)
    c.set("s:lzf", "abcd" * 500)
    c.set("s:raw", bytes(range(256)) * 3)
    c.pexpireat("s:small", 4102444800000)
    c.rpush("l:small", "a", "b", 3, -4)
    c.rpush("l:big", *[f"item{i}" * (1 + i % 5) for i in range(3000)])
    c.sadd("set:int", *range(0, 500, 7))
    c.sadd("set:str", *[f"m{i}" for i in range(300)])
    c.sadd("set:mixed", "x", 1, 2)
    c.zadd("z:small", {"a": 1.5, "b": -2, "c": 3})
    c.zadd("z:big", {f"m{i}": i / 7 for i in range(400)})
    c.zadd("z:inf", {"lo": float("-inf"), "hi": float("inf")})
    c.hset("h:small", mapping={"f1": "v1", "f2": 2})
    c.hset("h:big", mapping={f"field{i}": "v" * (i % 90) for i in range(600)})
    c.hset("h:longval", mapping={"f": "x" * 200})
    for i in range(50):
        c.xadd("st", {"a": i, "b": f"v{i}"} if i % 3 else {"other": i})
    c.xgroup_create("st", "g1", id="0")
    c.xreadgroup("g1", "alice", {"st": ">"}, count=5)
    c.xreadgroup("g1", "bob", {"st": ">"}, count=2)
    first = c.xrange("st", count=3)
    c.xdel("st", first[1][0])
    c.xack("st", "g1", first[0][0])
    c.select(3)
    c.set("db3:key", "in db 3")
    c.select(0)


def check(server: RedisServer) -> None:
    c = server.client()
    populate(c)
    server.save()
    c3 = server.client(db=3)
    keys = 0
    parser = RdbParser(source=str(server.rdb_path))
    parser.feed(server.rdb_path.read_bytes())
    for rec in parser.records():
        assert parser.header is not None
        if not isinstance(rec, KeyRecord):
            continue
        keys += 1
        cli = c3 if rec.db == 3 else c
        payload = cli.dump(rec.key)
        assert payload is not None
        assert payload[0] == rec.type_byte and payload[1:-10] == rec.value, rec.key
        v = decode_value(rec.type_byte, rec.value, header=parser.header, key=rec.key)
        kind = cli.type(rec.key)
        if kind == b"string":
            assert isinstance(v, StringValue) and v.data == cli.get(rec.key)
        elif kind == b"list":
            assert isinstance(v, ListValue) and v.items == cli.lrange(rec.key, 0, -1)
        elif kind == b"set":
            assert isinstance(v, SetValue) and set(v.members) == cli.smembers(rec.key)
        elif kind == b"zset":
            assert isinstance(v, ZSetValue)
            assert sorted(v.items) == sorted(cli.zrange(rec.key, 0, -1, withscores=True))
        elif kind == b"hash":
            assert isinstance(v, HashValue) and dict(v.items) == cli.hgetall(rec.key)
        else:
            assert kind == b"stream" and isinstance(v, StreamValue)
            want = [((int(i.split(b"-")[0]), int(i.split(b"-")[1])),
                     [x for kv in fields.items() for x in kv]) for i, fields in cli.xrange(rec.key)]
            assert v.entries == want and v.length == len(want)
            (g,) = v.groups
            info = cli.xinfo_groups(rec.key)[0]
            assert g.name == b"g1" and len(g.pending) == info["pending"] == 6
            assert sorted(c.name for c in g.consumers) == [b"alice", b"bob"]
        expected_ms = cli.pttl(rec.key)
        assert (rec.expire_ms >= 0) == (expected_ms > 0)
    parser.close()
    assert keys == c.dbsize() + c3.dbsize()


def test_redis7_dump_matches_server(redis_factory: Callable[..., RedisServer]) -> None:
    check(redis_factory("r7"))


def test_redis6_dump_matches_server(redis_factory: Callable[..., RedisServer]) -> None:
    binary = require_redis6()
    check(redis_factory("r6", binary=binary))


def test_valkey8_dump_matches_server(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("v8", binary=require_valkey8())
    check(server)
    assert server.rdb_path.read_bytes()[:9] == b"REDIS0011"
