"""The replication link against real servers: disk and diskless RDB transfer, stream offsets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import ReplicationLink, SyncRefusedError
from support.compare import compare_servers
from support.poll import until
from support.servers import RedisServer, start_redis


def _fill(server: RedisServer, n: int = 2000) -> None:
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(n):
        p.set(f"s:{i}", "v" * (i % 300))
        p.rpush(f"l:{i % 50}", i)
        p.hset(f"h:{i % 40}", f"f{i}", i)
    p.set("ttl", "x", px=500_000)
    p.execute()


@pytest.mark.parametrize("diskless", [False, True])
async def test_rdb_transfer_is_a_loadable_rdb(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, diskless: bool
) -> None:
    args = ["--repl-diskless-sync", "yes" if diskless else "no", "--repl-diskless-sync-delay", "0"]
    source = redis_factory("src", password="s3cret", args=args)
    _fill(source)
    link = ReplicationLink(Endpoint.from_url(source.url), chunk_size=7919)  # odd-sized reads
    await link.connect()
    res = await link.psync(None, -1)
    assert res.full and len(res.replid) == 40
    copy = tmp_path / "copy"
    copy.mkdir()
    chunks = 0
    with open(copy / "dump.rdb", "wb") as f:
        async for chunk in link.rdb():
            f.write(chunk)
            chunks += 1
    assert chunks > 1
    assert (link.rdb_size is None) == diskless
    assert link.rdb_received == (copy / "dump.rdb").stat().st_size
    assert (copy / "dump.rdb").read_bytes()[:5] == b"REDIS"

    # The stream after the RDB: offsets match the master's own count.
    source.client().set("after", "1")
    source.client().incr("after")
    seen: list[list[bytes]] = []
    deadline = time.monotonic() + 10
    async for batch in link.commands():
        seen += [argv for argv, _ in batch]
        master = source.client().info("replication")["master_repl_offset"]
        if any(a[0].lower().startswith(b"incr") for a in seen) and link.offset == master:
            break
        assert time.monotonic() < deadline, (seen, link.offset, master)
    assert [a[0].lower() for a in seen if a[0].lower() != b"select"] [:1] == [b"set"]
    # The master sees our acks (sent every second).
    await until(lambda: source.client().info("replication")["slave0"]["offset"] == link.offset,
                what="the master to see our ack")
    await link.close()

    source.client().delete("after")
    loaded = start_redis(copy)
    try:
        report = compare_servers([source.client()], [loaded.client()])
        assert report.ok, report.summary()
        assert report.compared == source.client().dbsize() == 2091
    finally:
        loaded.stop()


async def test_acl_user_replicates(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", password="admin", args=["--repl-diskless-sync-delay", "0"])
    source.client().execute_command("ACL", "SETUSER", "repl", "on", ">rpw", "+psync", "+replconf", "+ping")
    source.client().set("k", "v")
    link = ReplicationLink(Endpoint.from_url(f"redis://repl:rpw@127.0.0.1:{source.port}"))
    await link.connect()
    res = await link.psync(None, -1)
    assert res.full
    data = b"".join([c async for c in link.rdb()])
    assert data.startswith(b"REDIS") and b"k" in data
    await link.close()


async def test_user_without_psync_is_refused(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", password="admin")
    source.client().execute_command("ACL", "SETUSER", "ro", "on", ">pw", "~*", "+@read", "+ping", "+replconf")
    link = ReplicationLink(Endpoint.from_url(f"redis://ro:pw@127.0.0.1:{source.port}"))
    await link.connect()
    with pytest.raises(SyncRefusedError, match="NOPERM"):
        await link.psync(None, -1)
    await link.close()
