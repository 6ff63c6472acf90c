"""Keys already in the target: replaced and counted by default, kept and counted with no-replace,
on the RESTORE path and on the rewrite path alike."""

from __future__ import annotations

import asyncio

import pytest

from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import Endpoint, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import RecordingSink, StatusSnapshot
from support.servers import RedisServer


def _source_rdb(source: RedisServer) -> str:
    c = source.client()
    for i in range(50):
        c.set(f"s{i}", f"new{i}")
    c.rpush("l", *[f"x{i}" for i in range(5)])
    c.hset("h", mapping={"a": "1", "b": "2"})
    return str(source.save())


def _import(path: str, target: RedisServer, **options: object) -> StatusSnapshot:
    spec = PipelineSpec(
        SourceSpec(SourceKind.RDB_FILES, paths=(path,)),
        Endpoint.from_url(target.url),
        PipelineOptions(**options),  # type: ignore[arg-type]
    )
    return asyncio.run(run_pipeline(spec, events=RecordingSink()))


@pytest.mark.parametrize("rewrite", [False, True], ids=["restore", "rewrite"])
def test_replace_counts_replaced_keys(
    source_redis: RedisServer, target_redis: RedisServer, rewrite: bool
) -> None:
    path = _source_rdb(source_redis)
    t = target_redis.client()
    t.set("s1", "old")
    t.set("s2", "old")
    t.rpush("l", "old")
    t.set("unrelated", "x")
    snap = _import(path, target_redis, rewrite=rewrite)
    assert snap.keys_replaced == 3
    assert snap.keys_skipped == 0
    assert t.get("s1") == b"new1"
    assert t.lrange("l", 0, -1) == [f"x{i}".encode() for i in range(5)]
    assert t.dbsize() == 53


@pytest.mark.parametrize("rewrite", [False, True], ids=["restore", "rewrite"])
def test_no_replace_keeps_existing_keys(
    source_redis: RedisServer, target_redis: RedisServer, rewrite: bool
) -> None:
    path = _source_rdb(source_redis)
    t = target_redis.client()
    t.set("s1", "old")
    t.rpush("l", "old")
    t.hset("h", "a", "kept")
    snap = _import(path, target_redis, rewrite=rewrite, replace=False)
    assert snap.keys_skipped == 3
    assert snap.keys_failed == 0
    assert snap.keys_replaced == 0
    assert t.get("s1") == b"old"
    assert t.lrange("l", 0, -1) == [b"old"]
    assert t.hgetall("h") == {b"a": b"kept"}
    assert t.get("s2") == b"new2"
    assert t.dbsize() == 52
