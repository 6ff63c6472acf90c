"""ClusterWriter against the 3-master cluster fixture."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import redis

from cachemigrate.engine.entry import Command, PackedRun
from cachemigrate.engine.writers import ClusterWriter, WriterOptions, open_writer
from cachemigrate.errors import IncompatibleTargetError
from cachemigrate.protocol.cluster import (
    Topology,
    _from_nodes,
    _from_shards,
    _from_slots,
    fetch_topology,
    key_slot,
)
from cachemigrate.protocol.commands import pack_command
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.probe import probe_target
from support.servers import RedisCluster, start_cluster


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One cluster for this module (forming one takes seconds): the tests use distinct slots."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield cluster
    cluster.stop()


def _node_ids(cluster: RedisCluster) -> list[str]:
    return [n.client().execute_command("CLUSTER", "MYID").decode() for n in cluster.nodes]



def _keys_in_slot(slot: int, n: int) -> list[bytes]:
    out, i = [], 0
    while len(out) < n:
        k = b"{s%d}:%d" % (i, 0)
        if key_slot(k) == slot:
            out = [b"{s%d}:%d" % (i, j) for j in range(n)]
        i += 1
    return out


async def test_keyslot_agrees_with_server(redis_cluster: RedisCluster) -> None:
    rng = random.Random(5)
    keys = [rng.randbytes(rng.randint(0, 20)) for _ in range(300)]
    keys += [b"{tag}x", b"a{}b", b"{}{x}", b"{{x}}", b"x{y}{z}", b"{\xff}"]
    conn = await Connection.open(Endpoint.from_url(redis_cluster.url))
    try:
        for k in keys:
            assert await conn.execute("CLUSTER", "KEYSLOT", k) == key_slot(k), k
    finally:
        await conn.close()


async def test_topology_sources_agree(redis_cluster: RedisCluster) -> None:
    conn = await Connection.open(Endpoint.from_url(redis_cluster.url))
    try:
        views = [Topology.from_masters(await f(conn)) for f in (_from_shards, _from_slots, _from_nodes)]
        best = await fetch_topology(conn)
    finally:
        await conn.close()
    for t in views:
        assert [(m.port, m.slots) for m in t.masters] == [(m.port, m.slots) for m in best.masters]
        assert t.owner == best.owner and t.covered
    assert sorted(m.port for m in best.masters) == sorted(n.port for n in redis_cluster.nodes)


async def test_keys_spread_over_every_master(redis_cluster: RedisCluster) -> None:
    for n in redis_cluster.nodes:
        n.client().flushall()
    info = await probe_target(Endpoint.from_url(redis_cluster.url))
    assert info.cluster and info.databases == 1
    w = await open_writer(Endpoint.from_url(redis_cluster.url), WriterOptions(), info=info)
    assert isinstance(w, ClusterWriter)
    entries = [Command([b"SET", b"key:%d" % i, b"v%d" % i], key=b"key:%d" % i, tag="string",
                     source_offset=i + 1) for i in range(3000)]
    for i in range(0, 3000, 500):
        await w.write(entries[i : i + 500])
    await w.flush()
    assert w.stats.keys_written == 3000 and not w.failures
    assert w.stats.applied_offset == 3000
    sizes = [n.client().dbsize() for n in redis_cluster.nodes]
    assert sum(sizes) == 3000 and min(sizes) > 800
    # keyless entries go to every master
    await w.write([Command([b"FLUSHALL"], db=-1)])
    await w.flush()
    await w.close()
    assert [n.client().dbsize() for n in redis_cluster.nodes] == [0, 0, 0]


async def test_moved_after_slot_migration(redis_cluster: RedisCluster) -> None:
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    await w.start()  # topology read now: becomes stale below
    ids = _node_ids(redis_cluster)
    slot = 100  # served by node 0
    keys = _keys_in_slot(slot, 50)
    for n in redis_cluster.nodes:
        n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[2])
    entries = [Command([b"SET", k, b"x"], key=k, tag="string", source_offset=i + 1)
               for i, k in enumerate(keys)]
    # Same-key order: a later SET of the same key must win after the re-send.
    entries.append(Command([b"SET", keys[0], b"last"], key=keys[0], source_offset=len(keys) + 1))
    entries += [Command([b"SET", b"other:%d" % i, b"y"], key=b"other:%d" % i, source_offset=100 + i)
                for i in range(200)]
    await w.write(entries)
    await w.flush()
    await w.close()
    assert not w.failures
    assert w.refreshes >= 2
    node2 = redis_cluster.nodes[2].client()
    assert node2.get(keys[0]) == b"last"
    assert all(node2.exists(k) for k in keys)
    assert redis_cluster.client().get(b"other:5") == b"y"
    assert w.stats.keys_written == 50 and w.stats.applied_offset == 299


async def test_ask_during_slot_migration(redis_cluster: RedisCluster) -> None:
    ids = _node_ids(redis_cluster)
    slot = 200  # node 0 migrates it to node 1; the keys do not exist yet: node 0 answers ASK
    a, b = redis_cluster.nodes[0].client(), redis_cluster.nodes[1].client()
    b.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[0])
    a.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[1])
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    await w.start()
    keys = _keys_in_slot(slot, 20)
    await w.write([Command([b"SET", k, b"asked"], key=k, tag="string") for k in keys])
    await w.flush()
    await w.close()
    assert not w.failures and w.stats.keys_written == 20
    assert all(b.execute_command("ASKING") and b.get(k) == b"asked" for k in keys[:1])
    assert b.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 20
    assert a.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


async def test_a_packed_run_is_refused_before_anything_is_sent(redis_cluster: RedisCluster) -> None:
    wire = b"".join(pack_command([b"SET", b"run:%d" % i, b"v"]) for i in range(3))
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    await w.start()
    with pytest.raises(TypeError, match="PackedRun"):
        await w.write([Command([b"SET", b"first", b"1"], key=b"first"), PackedRun(wire, len(wire), 3, 0, 7)])
    await w.flush()
    await w.close()
    c = redis_cluster.client()
    assert not any(c.exists(k) for k in [b"first", *(b"run:%d" % i for i in range(3))])


async def test_db_other_than_zero_is_refused(redis_cluster: RedisCluster) -> None:
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    await w.start()
    with pytest.raises(IncompatibleTargetError, match="only db 0"):
        await w.write([Command([b"SET", b"a", b"1"], key=b"a"),
                       Command([b"SET", b"b", b"1"], db=3, key=b"b")])
    await w.close()
    with pytest.raises(redis.ResponseError):
        redis_cluster.nodes[0].client().execute_command("SELECT", 3)


async def test_multi_block_goes_whole_to_its_slot_owner(redis_cluster: RedisCluster) -> None:
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    await w.start()
    block = [
        Command([b"SET", b"before", b"0"], key=b"before"),
        Command([b"MULTI"]),
        Command([b"SET", b"{tx}a", b"1"], key=b"{tx}a", tag="string"),
        Command([b"INCR", b"{tx}n"], key=b"{tx}n", tag="string"),
        Command([b"EXEC"], source_offset=9),
    ]
    await w.write(block)
    await w.flush()
    await w.close()
    assert not w.failures and w.stats.applied_offset == 9
    c = redis_cluster.client()
    assert c.get(b"{tx}a") == b"1" and c.get(b"{tx}n") == b"1" and c.get(b"before") == b"0"


async def test_tryagain_is_retried_then_reported(redis_cluster: RedisCluster) -> None:
    ids = _node_ids(redis_cluster)
    slot = 300  # node 0 -> node 1, half of a multi-key command's keys still on node 0: TRYAGAIN
    a, b = redis_cluster.nodes[0].client(), redis_cluster.nodes[1].client()
    k1, k2 = _keys_in_slot(slot, 2)
    a.set(k1, b"here")
    b.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[0])
    a.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[1])
    w = ClusterWriter(Endpoint.from_url(redis_cluster.url))
    w.max_attempts = 3
    await w.start()
    await w.write([Command([b"DEL", k1, k2], key=k1, tag="string", source_offset=5),
                   Command([b"SET", b"fine", b"1"], key=b"fine", source_offset=6)])
    await w.flush()
    await w.close()
    assert [(f.key, f.command) for f in w.failures] == [(k1, "DEL")]
    assert w.failures[0].error.startswith("TRYAGAIN") and "3 attempts" in w.failures[0].error
    assert w.stats.keys_failed == 1 and w.stats.applied_offset == 6
    assert a.get(k1) == b"here"
