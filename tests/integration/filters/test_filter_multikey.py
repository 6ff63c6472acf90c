"""Multi-key commands under key rules, on the command paths (the incremental phase, a plain AOF):
a command passes whole when every key passes, is dropped when none does, and is dropped with a
warning naming its keys when they disagree (RedisShake's semantics, docs/filters.md).

The reference is the test's own: what the source holds, with the rules applied by
``support.filter_ref.expected``, less the keys that only a dropped mixed command wrote.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cachemigrate.engine.filters import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, Phase, RecordingSink
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import compare_keyspaces, keyspace
from support.filter_ref import expected
from support.poll import until
from support.servers import RedisServer

FAST = ["--repl-diskless-sync-delay", "0"]
RULES = {"block_key_prefix": ["temp:"]}
ONLY_MIXED = {b"user:3", b"user:5"}  # written only by commands whose keys disagree


def _writes(source: RedisServer) -> None:
    for db in (0, 1):
        c = source.client(db=db)
        c.mset({"user:1": "a", "user:2": "b"})  # every key passes: whole
        c.mset({"user:3": "c", "temp:4": "d"})  # they disagree: dropped, logged
        c.mset({"temp:5": "e", "temp:6": "f"})  # none passes: dropped
        c.msetnx({"user:5": "g", "temp:7": "h"})  # disagree
        c.set("user:7", "kept")
        c.set("temp:8", "left")
        c.sadd("user:set", "x")
        c.sadd("temp:set", "y")
        c.sunionstore("user:union", ["user:set"])  # passes whole
        c.sunionstore("user:mixed", ["user:set", "temp:set"])  # disagree: dropped


def _reference(source: RedisServer) -> Any:
    before = keyspace([source.client()])
    return {k: v for k, v in expected(before, RULES).items()
            if k[1] not in ONLY_MIXED and k[1] != b"user:mixed"}


def _check(sink: RecordingSink, source: RedisServer, target: RedisServer) -> None:
    result = compare_keyspaces(_reference(source), keyspace([target.client()]))
    assert result.ok, result.summary()
    assert result.compared == 2 * 5  # user:1, user:2, user:7, user:set, user:union in dbs 0 and 1
    warnings = [m for lvl, m in sink.logs if lvl is LogLevel.WARNING and "disagree" in m]
    mixed_mset = "passed: user:3; filtered: temp:4"
    assert sum("MSET dropped" in m and mixed_mset in m for m in warnings) == 2, warnings
    assert sum("MSETNX dropped" in m for m in warnings) == 2, warnings
    assert sum("SUNIONSTORE dropped" in m and "filtered: temp:set" in m for m in warnings) == 2, warnings
    assert not any("temp:5" in m for m in warnings)  # dropped whole, not a disagreement


async def test_multi_key_commands_in_the_incremental_phase(redis_factory: Any) -> None:
    source, target = redis_factory("src", args=FAST), redis_factory("dst")
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(source.url)),
                        Endpoint.from_url(target.url),
                        PipelineOptions(filters=FilterRules.from_mapping(RULES), incremental=True))
    sink = RecordingSink()
    stop = asyncio.Event()
    task = asyncio.create_task(run_pipeline(spec, events=sink, stop=stop))
    try:
        await until(lambda: sink.last is not None and sink.last.phase is Phase.INCREMENTAL, 60,
                    what="the incremental phase")
        await asyncio.to_thread(_writes, source)
        offset = int(source.client().info("replication")["master_repl_offset"])
        await until(lambda: sink.last is not None and (sink.last.applied_offset or 0) >= offset, 60,
                    what="the target to apply the writes")
    finally:
        stop.set()
        final = await asyncio.wait_for(task, 30)
    assert final.keys_failed == 0, sink.logs[-5:]
    _check(sink, source, target)


async def test_multi_key_commands_in_a_plain_aof(redis_factory: Any) -> None:
    source = redis_factory("src", args=[*FAST, "--appendonly", "yes", "--appenddirname", "aof",
                                        "--aof-use-rdb-preamble", "no", "--appendfsync", "always"])
    target = redis_factory("dst")
    # appendfsync always: each write is in the file before its reply (with everysec Redis may
    # postpone the write itself while a background fsync runs).
    _writes(source)
    folder: Path = source.directory / "aof"
    spec = PipelineSpec(SourceSpec(SourceKind.AOF_FILES, paths=(str(folder),)),
                        Endpoint.from_url(target.url),
                        PipelineOptions(filters=FilterRules.from_mapping(RULES)))
    sink = RecordingSink()
    final = await run_pipeline(spec, events=sink)
    assert final.phase is Phase.DONE and final.keys_failed == 0, sink.logs[-5:]
    _check(sink, source, target)
