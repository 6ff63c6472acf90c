"""Big keys as ONE RESTORE each, the payload streamed from the source (engine/streamed.py): from an
RDB file and from an online full sync, every kind of value above the bound (set low here, so a few
hundred KB is big) lands in a real redis-server as the source has it (support.compare), in its db,
with its TTL, and the target saw RESTOREs only (its own command counts). A target whose
proto-max-bulk-len is below a value gets that value rewritten in chunks, still equal."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import Endpoint, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import RecordingSink, StatusSnapshot
from support.compare import compare_servers
from support.servers import RedisServer

BOUND = 64 << 10  # values above this are big
# Hashes under 20k fields are one listpack (a big value that is one RDB string).
SOURCE_ARGS = ["--hash-max-listpack-entries", "20000", "--hash-max-listpack-value", "1024"]
WRITE_CMDS = ("hset", "rpush", "sadd", "zadd", "xadd", "set", "append", "xgroup", "xsetid", "xclaim")


def _fill(c: redis.Redis, c2: redis.Redis) -> int:
    """Small keys and big ones of every kind (hash both ways, list, set, zset, stream with a
    group and pending entries, string), some with a TTL, one in db 2; returns the key count."""
    p = c.pipeline(transaction=False)
    for i in range(300):
        p.set(b"small:%d" % i, b"v%d" % i)
    p.execute()
    c.hset(b"big:hash-listpack", mapping={b"field-%05d" % i: b"value-%d" % i for i in range(10_000)})
    c.hset(b"big:hash", b"long", b"L" * 2000)  # a hashtable at once (no listpack to grow first)
    # ~3 MB: a RESTORE of several pieces
    c.hset(b"big:hash", mapping={b"f%06d" % i: b"v" * (i % 9) for i in range(150_000)})
    c.rpush(b"big:list", *[b"item-%d" % i for i in range(30_000)])
    c.sadd(b"big:set", *[b"member-%d" % i for i in range(30_000)])
    c.zadd(b"big:zset", {b"m%d" % i: i / 7 for i in range(30_000)})
    c.set(b"big:string", random.Random(2).randbytes(400_000))
    p = c.pipeline(transaction=False)
    for i in range(8_000):
        p.xadd(b"big:stream", {b"n": b"%d" % i, b"pad": b"x" * 20}, id=b"%d-1" % (i + 1))
    p.execute()
    c.xgroup_create(b"big:stream", b"grp", id=b"0")
    c.xreadgroup(b"grp", b"reader", {b"big:stream": b">"}, count=7)
    c.pexpire(b"big:zset", 3_600_000)
    c.pexpire(b"big:hash", 7_200_000)
    c2.rpush(b"big:list-db2", *[b"x%d" % i for i in range(40_000)])
    c2.set(b"small-db2", b"s")
    return 300 + 7 + 2


def _source(redis_factory: Callable[..., RedisServer]) -> tuple[RedisServer, int]:
    src = redis_factory("src", args=[*SOURCE_ARGS, "--repl-diskless-sync", "yes",
                                     "--repl-diskless-sync-delay", "0"])
    keys = _fill(src.client(), src.client(db=2))
    return src, keys


def _run(source: SourceSpec, target: RedisServer, in_flight: int = 8 << 20) -> StatusSnapshot:
    sink = RecordingSink()
    options = PipelineOptions(big_key_bytes=BOUND, max_bytes_in_flight=in_flight)
    spec = PipelineSpec(source, Endpoint.from_url(target.url), options)
    final = asyncio.run(run_pipeline(spec, events=sink))
    assert final.keys_failed == 0 and final.commands_failed == 0, [m for _, m in sink.logs]
    return final


def _calls(server: RedisServer) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {k.removeprefix("cmdstat_").split("|")[0]: int(v["calls"]) for k, v in stats.items()}


def _equal(src: RedisServer, tgt: RedisServer) -> None:
    cmp = compare_servers([src.client()], [tgt.client()])
    assert not cmp.mismatches, cmp.mismatches[:5]
    assert cmp.compared >= 300, cmp.compared


@pytest.mark.parametrize("kind", ["file", "full-sync", "file-small-budget"])
def test_big_keys_go_as_one_streamed_restore(redis_factory: Callable[..., RedisServer], tmp_path: Path,
                                             kind: str) -> None:
    """small-budget: 256 KiB in flight, below most of the RESTOREs (each admitted alone)."""
    src, keys = _source(redis_factory)
    tgt = redis_factory("dst")
    if kind.startswith("file"):
        rdb = tmp_path / "big.rdb"
        rdb.write_bytes(src.save().read_bytes())
        source = SourceSpec(SourceKind.RDB_FILES, paths=(str(rdb),))
    else:
        source = SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(src.url))
    final = _run(source, tgt, 256 << 10 if kind == "file-small-budget" else 8 << 20)
    _equal(src, tgt)
    calls = _calls(tgt)
    assert calls.get("restore") == keys, calls
    assert not {c: n for c, n in calls.items() if c in WRITE_CMDS}, calls  # nothing rewritten
    assert final.keys_written == keys


def test_values_above_the_targets_max_bulk_are_rewritten(redis_factory: Callable[..., RedisServer],
                                                         tmp_path: Path) -> None:
    """proto-max-bulk-len 1 MB (its minimum): the collections above it (a 1.3 MB hashtable hash, a
    1.5 MB list) are rewritten in chunks, the others still streamed (a string that big could not be
    rewritten either: the limit is also that of a string value, APPEND refuses it); all equal."""
    src = redis_factory("src")
    c = src.client()
    c.hset(b"h", mapping={b"f%06d" % i: b"v" * 3 for i in range(100_000)})
    c.set(b"s", random.Random(1).randbytes(900_000))  # no LZF: it does not compress
    rng = random.Random(3)
    c.rpush(b"l", *[rng.randbytes(12).hex().encode() for _ in range(60_000)])  # LZF cannot shrink it
    c.sadd(b"under", *[b"m%d" % i for i in range(20_000)])  # ~150 KB: streamed
    c.pexpire(b"h", 3_600_000)
    rdb = tmp_path / "bulk.rdb"
    rdb.write_bytes(src.save().read_bytes())
    assert min(len(c.dump(k) or b"") for k in (b"h", b"l")) > 1 << 20
    tgt = redis_factory("dst", args=["--proto-max-bulk-len", "1mb"])
    final = _run(SourceSpec(SourceKind.RDB_FILES, paths=(str(rdb),)), tgt)
    _equal_small(src, tgt)
    calls = _calls(tgt)
    assert calls.get("restore") == 2, calls  # "under" and "s"
    assert calls.get("hset", 0) > 1 and calls.get("rpush", 0) > 1, calls
    assert final.keys_written == 4


def _equal_small(src: RedisServer, tgt: RedisServer) -> None:
    cmp = compare_servers([src.client()], [tgt.client()])
    assert not cmp.mismatches, cmp.mismatches[:5]
    assert cmp.compared == 4
