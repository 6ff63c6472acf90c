"""Every rule kind on every path: the target equals what the independent reference says.

For each path (RDB file, AOF with its RDB preamble, plain AOF commands, online full sync, the
incremental phase, SCAN, a cluster source, a cluster target) and each rule kind of
``support.filter_ref.RULE_KINDS``, a random dataset moves under that rule set; the target must
hold exactly ``filter_ref.expected(source keyspace, rules)`` (computed from the source with
redis-py, none of the product's filter code), compared with ``support.compare``. Rules the
command path does not apply (expiry rules: commands carry their own TTLs) are not run there.

Set CACHEMIGRATE_FILTER_TABLE to a file to get one JSON line per run (path, kind, keys
compared, mismatches): the table of the closing note.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import DbMode, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import Phase, RecordingSink, StatusSnapshot
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import cluster_nodes, compare_keyspaces, keyspace
from support.filter_ref import COMMAND_KINDS, RULE_KINDS, expected, random_dataset
from support.poll import until
from support.servers import RedisCluster, RedisServer, start_cluster, start_redis

FAST = ["--repl-diskless-sync-delay", "0"]
KEY_ONLY = ("expiry: skip", "expiry: cap TTL")  # rules of key records, not of commands
DB_KINDS = ("db allow/block", "db map")
# A cluster has only db 0: a cluster source has no db rules to apply; into a cluster target
# (from dbs 0-2) only db 0 may go, or a db mapped to 0.
CLUSTER_RULES = {
    "db allow/block": {"block_db": [1, 2]},
    "db map": {"allow_db": [1], "db_map": {"1": 0}},
}
PATHS = ("rdb", "rdb-python", "aof-preamble", "aof-commands", "sync-full", "incremental", "scan",
         "cluster-source", "cluster-target")


def _cases() -> Iterator[Any]:
    for path in PATHS:
        for kind in RULE_KINDS:
            if kind in KEY_ONLY and path in ("aof-commands", "incremental"):
                continue
            if kind in DB_KINDS and path == "cluster-source":
                continue
            yield pytest.param(path, kind, id=f"{path}-{kind}")
    for path in ("aof-commands", "incremental"):
        for kind in COMMAND_KINDS:
            yield pytest.param(path, kind, id=f"{path}-{kind}")


def _tolerance(rules: dict[str, Any]) -> int:
    # A capped TTL counts from the migration's clock, the reference's from the test's: they differ
    # by how long the run took (seconds on a loaded machine), never by minutes.
    return 120_000 if "max_ttl" in rules else 1000


def _record(path: str, kind: str, compared: int, mismatches: int) -> None:
    out = os.environ.get("CACHEMIGRATE_FILTER_TABLE")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": path, "kind": kind, "compared": compared,
                                "mismatches": mismatches}) + "\n")


class Servers:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.standalone: dict[str, RedisServer] = {}
        self.cluster: RedisCluster | None = None

    def server(self, name: str, args: list[str] | None = None) -> RedisServer:
        if name not in self.standalone:
            self.standalone[name] = start_redis(self.base / name, args=args or FAST)
        s = self.standalone[name]
        s.client().flushall()
        return s

    def the_cluster(self) -> RedisCluster:
        if self.cluster is None:
            self.cluster = start_cluster(self.base / "cluster", masters=3)
            for n in self.cluster.nodes:  # a full sync starts at once (the default waits 5 s)
                n.client().config_set("repl-diskless-sync-delay", 0)
        for n in self.cluster.nodes:
            n.client().flushall()
        return self.cluster

    def stop(self) -> None:
        for s in self.standalone.values():
            s.stop()
        if self.cluster is not None:
            self.cluster.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("filters"))
    yield s
    s.stop()


def _spec(source: SourceSpec, target: str, rules: dict[str, Any], **kw: Any) -> PipelineSpec:
    return PipelineSpec(source, Endpoint.from_url(target),
                        PipelineOptions(filters=FilterRules.from_mapping(rules), **kw))


async def _run(spec: PipelineSpec) -> StatusSnapshot:
    sink = RecordingSink()
    final = await run_pipeline(spec, events=sink)
    assert final.phase is Phase.DONE, sink.logs[-5:]
    assert final.keys_failed == 0, sink.logs[-5:]
    return final


async def _aof_ready(src: RedisServer) -> Path:
    c = src.client()

    def rewritten() -> bool:
        info = c.info("persistence")
        return (not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]
                and info["aof_last_bgrewrite_status"] == "ok")

    await until(rewritten, 60, what="the AOF rewrite")
    return src.directory / "aof"


async def _incremental(src: RedisServer, target: str, rules: dict[str, Any]) -> None:
    spec = _spec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(src.url)), target, rules,
                 incremental=True)
    sink = RecordingSink()
    stop = asyncio.Event()
    task = asyncio.create_task(run_pipeline(spec, events=sink, stop=stop))
    try:
        await until(lambda: sink.last is not None and sink.last.phase is Phase.INCREMENTAL, 60,
                    what="the incremental phase")
        await asyncio.to_thread(random_dataset, src.client())
        offset = int(src.client().info("replication")["master_repl_offset"])
        await until(lambda: sink.last is not None and (sink.last.applied_offset or 0) >= offset, 60,
                    what="the target to apply the writes")
    finally:
        stop.set()
        final = await asyncio.wait_for(task, 30)
    assert final.keys_failed == 0, sink.logs[-5:]


@pytest.mark.parametrize(("path", "kind"), list(_cases()))
async def test_rule_kind_on_path(servers: Servers, path: str, kind: str) -> None:
    cluster_path = path.startswith("cluster")
    rules, same_as = COMMAND_KINDS.get(kind) or (RULE_KINDS.get(kind, {}), None)
    if cluster_path and kind in DB_KINDS:
        rules = CLUSTER_RULES[kind]
    dbs = (0,) if cluster_path and kind not in DB_KINDS else (0, 1, 2)
    target_side: list[redis.Redis]
    if path == "cluster-target":
        cluster = servers.the_cluster()
        target_url, target_side = cluster.url, cluster_nodes(cluster)
    else:
        tgt = servers.server("target")
        target_url, target_side = tgt.url, [tgt.client()]
    if path == "cluster-source":
        cluster = servers.the_cluster()
        random_dataset(cluster.client(), dbs=dbs)  # type: ignore[arg-type]
        source_side = cluster_nodes(cluster)
        source = SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(cluster.url))
        before = keyspace(source_side)
        await _run(_spec(source, target_url, rules))
    elif path in ("aof-preamble", "aof-commands"):
        preamble = path == "aof-preamble"
        src = servers.server(f"aof-{preamble}", args=[
            *FAST, "--appendonly", "yes", "--appenddirname", "aof",
            "--aof-use-rdb-preamble", "yes" if preamble else "no"])
        random_dataset(src.client(), dbs=dbs)
        src.client().bgrewriteaof()
        folder = await _aof_ready(src)
        source_side = [src.client()]
        before = keyspace(source_side)
        await _run(_spec(SourceSpec(SourceKind.AOF_FILES, paths=(str(folder),)), target_url, rules))
    elif path == "incremental":
        src = servers.server("source")
        source_side = [src.client()]
        await _incremental(src, target_url, rules)
        before = keyspace(source_side)
    else:
        src = servers.server("source")
        random_dataset(src.client(), dbs=dbs)
        source_side = [src.client()]
        before = keyspace(source_side)
        extra: dict[str, Any] = {}
        kinds = {"rdb": SourceKind.RDB_FILES, "sync-full": SourceKind.SYNC, "scan": SourceKind.SCAN,
                 "cluster-target": SourceKind.SYNC}
        if path in ("rdb", "rdb-python"):  # the C walker (when rules allow), the Python parser
            source = SourceSpec(SourceKind.RDB_FILES, paths=(str(src.save()),))
            extra["c_walker"] = path == "rdb"
        else:
            source = SourceSpec(kinds[path], endpoint=Endpoint.from_url(src.url))
        if path == "cluster-target":
            extra["db_mode"] = DbMode.KEEP
        await _run(_spec(source, target_url, rules, **extra))
    want = expected(before, same_as or rules)
    got = keyspace(target_side)
    result = compare_keyspaces(want, got, ttl_tolerance_ms=_tolerance(rules))
    _record(path, kind, result.compared, len(result.mismatches))
    assert result.ok, result.summary()
    assert result.compared > 20
    assert want != before  # the rules did something to this dataset
