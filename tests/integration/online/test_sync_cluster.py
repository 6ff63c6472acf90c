"""Clusters: a standalone source into a 3-master cluster target, and a 3-master cluster source."""

from __future__ import annotations

from collections.abc import Callable

import redis
from online_workload import FAST, Online, Workload, check_equal, converged, seed

from cachemigrate.engine.spec import DbMode
from cachemigrate.engine.status import Phase
from support.compare import cluster_nodes
from support.servers import RedisCluster, RedisServer, start_cluster


async def test_standalone_source_into_cluster_target(
    redis_factory: Callable[..., RedisServer], redis_cluster: RedisCluster
) -> None:
    source = redis_factory("src", args=FAST)
    seed(source.client(), dbs=(0,))
    writer = Workload(source.port, pause=0.0005, dbs=(0,))
    writer.start()
    online = Online(source.url, redis_cluster.url, db_mode=DbMode.ONLY, db=0)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        await writer.more(500)  # writes during the incremental phase
        writer.stop()
        await online.wait_applied(source.client())
        await online.wait_for(lambda s: s.caught_up, timeout=10)
        result = check_equal([source.client()], cluster_nodes(redis_cluster))
        assert result.compared > 300
    finally:
        writer.stop_event.set()
        final = await online.finish()
    assert final.keys_failed == 0 and final.commands_failed == 0, online.sink.logs[-5:]


def _cluster_writes(client: redis.RedisCluster, start: int, n: int) -> None:
    for i in range(start, start + n):
        client.set(f"k:{i}", i, ex=500 if i % 3 == 0 else None)
        client.rpush(f"l:{i % 20}", i)
        client.hset(f"h:{i % 20}", f"f{i}", i)
        client.zadd(f"z:{i % 20}", {f"m{i}": i})
        client.sadd(f"s:{i % 20}", i)
        if i % 7 == 0:
            client.delete(f"k:{i - 3}")
        if i % 50 == 0:
            client.xadd(f"x:{i % 3}", {"i": i})


async def test_cluster_source_shards_merge_and_resume(
    redis_factory: Callable[..., RedisServer], tmp_path: object
) -> None:
    from pathlib import Path

    cluster = start_cluster(Path(str(tmp_path)) / "srccluster", masters=3)
    try:
        for n in cluster.nodes:
            n.client().config_set("repl-diskless-sync-delay", 0)
        target = redis_factory("dst")
        cc = cluster.client()
        _cluster_writes(cc, 0, 600)
        online = Online(cluster.url, target.url)
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL, timeout=40)
        assert online.last is not None and online.last.source_kind == "cluster"
        _cluster_writes(cc, 600, 300)
        # One shard loses its link: only that shard resumes (+CONTINUE).
        cluster.nodes[1].client().execute_command("CLIENT", "KILL", "TYPE", "replica")
        await online.wait_for(lambda s: s.resumes_continue >= 1)
        _cluster_writes(cc, 900, 200)
        await converged(cluster_nodes(cluster), [target.client()])
        await online.wait_for(lambda s: s.caught_up, timeout=15)
        check_equal(cluster_nodes(cluster), [target.client()])
        await online.finish()
        cp = await online.store.load()
        assert cp is not None and cp.phase == "incremental"
        assert len(cp.extra["shards"]) == 3

        # A restart from the stored checkpoint: every shard continues.
        _cluster_writes(cc, 1100, 100)
        again = Online(cluster.url, target.url, store=online.store)
        await again.wait_for(lambda s: s.resumes_continue == 3 and s.phase is Phase.INCREMENTAL)
        await converged(cluster_nodes(cluster), [target.client()])
        await again.wait_for(lambda s: s.caught_up, timeout=15)
        check_equal(cluster_nodes(cluster), [target.client()])
        final = await again.finish()
        assert final.resumes_fullresync == 0
        cc.close()
    finally:
        cluster.stop()
