"""SCAN + DUMP + PTTL: asked for, and as the fallback when a source refuses to replicate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from online_workload import Online, check_equal, seed

from cachemigrate.engine.spec import DbMode, SourceKind
from cachemigrate.engine.status import LogLevel, Phase
from support.compare import cluster_nodes
from support.servers import RedisCluster, RedisServer, server_binary


@pytest.mark.parametrize(("source_kind", "target_kind"), [("redis7", "redis7"), ("valkey8", "valkey8")])
async def test_scan_source_copies_every_db(
    redis_factory: Callable[..., RedisServer], source_kind: str, target_kind: str
) -> None:
    source = redis_factory("src", password="pw", binary=server_binary(source_kind))
    target = redis_factory("dst", binary=server_binary(target_kind))
    seed(source.client())
    online = Online(source.url, target.url, kind=SourceKind.SCAN)
    final = await asyncio.wait_for(online.task, 30)
    assert final.phase is Phase.DONE and final.source_kind == "scan"
    assert final.keys_failed == 0
    result = check_equal([source.client()], [target.client()])
    # seed()'s two "short" keys (1.5 s TTL) may expire between the copy and the comparison.
    assert result.compared > 500 and 0 <= final.keys_written - result.compared <= 2


async def test_scan_one_db_into_another(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src")
    target = redis_factory("dst")
    seed(source.client(), n=40)
    source.client(db=1).persist("short")  # DBSIZE counts it until each side expires it
    online = Online(source.url, target.url, kind=SourceKind.SCAN, db_mode=DbMode.ONLY, db=1, target_db=3)
    await asyncio.wait_for(online.task, 30)
    assert target.client(db=0).dbsize() == 0
    assert target.client(db=3).dbsize() == source.client(db=1).dbsize()


async def test_sync_refused_falls_back_to_scan(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=["--rename-command", "PSYNC", "", "--rename-command", "SYNC", ""])
    target = redis_factory("dst")
    seed(source.client(), n=100)
    online = Online(source.url, target.url)  # incremental asked for, but impossible here
    final = await asyncio.wait_for(online.task, 30)
    assert final.phase is Phase.DONE and final.source_kind == "scan"
    assert any(level is LogLevel.WARNING and "falling back to SCAN" in m for level, m in online.sink.logs)
    check_equal([source.client()], [target.client()])


async def test_scan_of_a_cluster_reads_every_master(
    redis_factory: Callable[..., RedisServer], redis_cluster: RedisCluster
) -> None:
    cc = redis_cluster.client()
    for i in range(300):
        cc.set(f"k:{i}", i, ex=600 if i % 2 else None)
        cc.hset(f"h:{i % 30}", f"f{i}", i)
    target = redis_factory("dst")
    online = Online(redis_cluster.url, target.url, kind=SourceKind.SCAN)
    final = await asyncio.wait_for(online.task, 30)
    assert final.phase is Phase.DONE
    result = check_equal(cluster_nodes(redis_cluster), [target.client()])
    assert result.compared == 330


async def test_no_permission_to_replicate_falls_back_to_scan(
    redis_factory: Callable[..., RedisServer],
) -> None:
    # What managed services do: the user may read and DUMP, not PSYNC.
    source = redis_factory("src", password="admin")
    seed(source.client(), n=60)
    source.client().execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@read", "+@connection",
                                    "+info", "+scan", "+dump", "+select")
    target = redis_factory("dst")
    online = Online(f"redis://app:pw@127.0.0.1:{source.port}", target.url)
    final = await asyncio.wait_for(online.task, 30)
    assert final.source_kind == "scan" and final.keys_failed == 0
    check_equal([source.client()], [target.client()])
