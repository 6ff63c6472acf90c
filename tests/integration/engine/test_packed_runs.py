"""An RDB import whose RESTOREs go out as the C walker's packed runs (many commands per Entry):
when the target refuses some keys in the middle of a run, each failure names its own key and db,
the written/failed counts are exact and every other key is in the target. The pure-Python path
(no C walker) gives the same result.

The target is empty (with keys in it the pipeline checks presence key by key and turns packed runs
off); the refusals come from an ACL user that may only touch keys not starting with "d".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis

from cachemigrate.engine import pipeline as pipeline_mod
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import Endpoint, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import KeyFailure, RecordingSink, StatusSnapshot
from cachemigrate.formats.rdb import walk as c_walk
from support.compare import compare_keyspaces, keyspace
from support.require import C_WALKER, require
from support.servers import RedisServer

USER, PASSWORD = "migrator", "s3cret"
N = 3000


def _fill(c0: redis.Redis, c1: redis.Redis) -> set[tuple[int, bytes]]:
    """A few thousand keys of every common encoding in db 0 and db 1; returns the denied ones."""
    p = c0.pipeline(transaction=False)
    for i in range(N):
        kind = i % 6
        if kind == 0:
            key = b"s:%d" % i
            p.set(key, b"value-%d" % i * (1 + i % 7))
        elif kind == 1:
            key = b"%d" % (100_000 + i)  # integer key and value: both int-encoded in the RDB
            p.set(key, i)
        elif kind == 2:
            key = b"h:%d" % i
            p.hset(key, mapping={b"f%d" % j: b"v%d" % (i * j) for j in range(1 + i % 9)})
        elif kind == 3:
            key = b"l:%d" % i
            p.rpush(key, *[b"item-%d" % j for j in range(1 + i % 11)])
        elif kind == 4:
            key = b"set:%d" % i
            p.sadd(key, *range(1 + i % 13))
        else:
            key = b"z:%d" % i
            p.zadd(key, {b"m%d" % j: j / 3 for j in range(1 + i % 10)})
        if i % 10 == 0:
            p.pexpire(key, 3_600_000)
    p.execute()
    c0.rpush(b"l:big", *[b"x" * 100] * 300)  # a quicklist of several hundred bytes
    denied = {
        (0, b"deny:str"), (0, b"deny:hash"), (0, b"deny:list"), (0, b"deny:set"), (0, b"deny:zset"),
        (0, b"deny:int"), (1, b"deny:in-db1"),
    }
    c0.set(b"deny:str", b"no")
    c0.hset(b"deny:hash", mapping={b"a": b"1", b"b": b"2"})
    c0.rpush(b"deny:list", *[b"element-%d" % j for j in range(5)])
    c0.sadd(b"deny:set", *range(20))
    c0.zadd(b"deny:zset", {b"one": 1, b"two": 2, b"inf": float("inf")})
    c0.set(b"deny:int", 42)
    c0.pexpire(b"deny:hash", 3_600_000)
    c1.set(b"deny:in-db1", b"no")
    for i in range(200):
        c1.set(b"one:%d" % i, b"v%d" % i)
    return denied


def _import(path: str, target: RedisServer) -> StatusSnapshot:
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{target.port}"
    source = SourceSpec(SourceKind.RDB_FILES, paths=(path,))
    spec = PipelineSpec(source, Endpoint.from_url(url), PipelineOptions())
    return asyncio.run(run_pipeline(spec, events=RecordingSink()))


def _acl_target(redis_factory: Callable[..., RedisServer], name: str) -> RedisServer:
    target = redis_factory(name)
    target.client().execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~[^d]*", "+@all")
    return target


@pytest.mark.parametrize("path_kind", ["c-walker", "pure-python"])
def test_refused_keys_in_packed_runs_are_named_and_counted(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch, path_kind: str
) -> None:
    source = redis_factory("source")
    denied = _fill(source.client(), source.client(db=1))
    rdb = str(source.save())
    expected = keyspace([source.client()])
    total = len(expected)
    assert total == N + 1 + 7 + 200

    walked = {"calls": 0, "keys": 0}
    in_runs: set[bytes] = set()  # denied keys seen inside a run of more than one command
    if path_kind == "pure-python":
        monkeypatch.setattr(c_walk, "walk", None)
    else:
        require(c_walk.walk is not None, C_WALKER)
        real = c_walk.walk

        def counting(*args: object) -> tuple[bytes, int, int, int]:
            res = real(*args)  # type: ignore[arg-type]
            walked["calls"] += 1
            walked["keys"] += res[2]
            if res[2] > 1:
                in_runs.update(k for _, k in denied if b"\r\n$%d\r\n%b\r\n" % (len(k), k) in res[0])
            return res

        monkeypatch.setattr(c_walk, "walk", counting)
    failures: list[KeyFailure] = []
    on_failure = pipeline_mod.Pipeline._on_failure

    def record(self: pipeline_mod.Pipeline, failure: KeyFailure) -> None:
        failures.append(failure)
        on_failure(self, failure)

    monkeypatch.setattr(pipeline_mod.Pipeline, "_on_failure", record)

    target = _acl_target(redis_factory, "target")
    snap = _import(rdb, target)

    assert sorted((f.db, f.key) for f in failures) == sorted(denied)
    assert all(f.command == "RESTORE" and f.error.startswith("NOPERM") for f in failures)
    assert snap.keys_failed == len(denied)
    assert snap.keys_written == total - len(denied)
    assert snap.commands_failed == len(denied)
    assert snap.keys_read == total and snap.keys_expired == 0
    if path_kind == "c-walker":
        # Most keys went out in runs, the refused ones among them.
        assert walked["calls"] > 0 and walked["keys"] > 0.9 * total, walked
        assert in_runs == {k for _, k in denied}
    for k in denied:
        expected.pop(k)
    got = keyspace([target.client()])
    result = compare_keyspaces(expected, got)
    assert result.ok, result.summary()
    assert result.compared == total - len(denied)


def test_a_target_flushed_first_takes_packed_runs(
    redis_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--flush-target empties the target before anything is written: no key-by-key presence
    check (it made a 1M-key import 5x slower in CPU), the walker's runs, and only the RDB's keys."""
    if c_walk.walk is None:
        pytest.skip("the C walker is not built")
    source = redis_factory("source")
    _fill(source.client(), source.client(db=1))
    rdb = str(source.save())
    expected = keyspace([source.client()])
    target = redis_factory("target")
    target.client().set(b"stale", b"left over")
    real, walked = c_walk.walk, {"keys": 0}

    def counting(*args: object) -> tuple[bytes, int, int, int]:
        res = real(*args)  # type: ignore[arg-type]
        walked["keys"] += res[2]
        return res

    monkeypatch.setattr(c_walk, "walk", counting)
    spec = PipelineSpec(SourceSpec(SourceKind.RDB_FILES, paths=(rdb,)), Endpoint.from_url(target.url),
                        PipelineOptions(flush_target=True))
    snap = asyncio.run(run_pipeline(spec, events=RecordingSink()))
    assert walked["keys"] > 0.9 * len(expected), walked
    assert snap.keys_replaced == 0 and snap.keys_written == len(expected)
    result = compare_keyspaces(expected, keyspace([target.client()]))
    assert result.ok and result.compared == len(expected), result.summary()
