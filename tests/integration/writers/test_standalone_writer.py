"""StandaloneWriter against real redis-server processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cachemigrate.engine.entry import Command
from cachemigrate.engine.status import KeyFailure
from cachemigrate.engine.writers import StandaloneWriter, WriterOptions, open_writer
from cachemigrate.errors import ConnectionLostError
from cachemigrate.protocol.endpoint import Endpoint
from support.poll import until
from support.servers import RedisServer


def _ep(server: RedisServer) -> Endpoint:
    return Endpoint.from_url(server.url)


def _restore_entries(source: RedisServer, n: int) -> list[Command]:
    c = source.client()
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        if i % 3 == 0:
            pipe.rpush(b"list:%d" % i, *[b"e%d" % j for j in range(5)])
        else:
            pipe.set(b"str:%d" % i, b"v%d" % i * (1 + i % 7))
    pipe.execute()
    keys = sorted(c.keys())
    pipe = c.pipeline(transaction=False)
    for k in keys:
        pipe.dump(k)
    payloads = pipe.execute()
    return [
        Command([b"RESTORE", k, b"0", p, b"REPLACE"], key=k,
                tag="list" if k.startswith(b"list") else "string", source_offset=(i + 1) * 10)
        for i, (k, p) in enumerate(zip(keys, payloads, strict=True))
    ]


@pytest.mark.parametrize("accelerated", [True, False], ids=["hiredis", "python"])
async def test_10k_entries_land_and_are_counted(
    source_redis: RedisServer, target_redis: RedisServer, accelerated: bool
) -> None:
    entries = _restore_entries(source_redis, 5000)
    entries += [
        Command([b"SET", b"set:%d" % i, b"x" * (i % 50)], key=b"set:%d" % i, tag="string",
              source_offset=50_000 + i)
        for i in range(5000)
    ]
    w = StandaloneWriter(_ep(target_redis), WriterOptions(batch_bytes=64 << 10, accelerated=accelerated))
    await w.start()
    offsets = [0]
    for i in range(0, len(entries), 700):
        await w.write(entries[i : i + 700])
        offsets.append(w.applied_offset)
    await w.flush()
    offsets.append(w.applied_offset)
    await w.close()
    assert offsets == sorted(offsets)
    assert w.applied_offset == entries[-1].source_offset
    assert w.stats.commands_written == len(entries) == w.stats.keys_written
    assert w.stats.commands_failed == 0 and not w.failures
    assert w.stats.bytes_written > 0
    t = target_redis.client()
    assert t.dbsize() == 10_000
    assert t.lrange(b"list:0", 0, -1) == [b"e%d" % j for j in range(5)]
    assert t.get(b"str:4") == b"v4" * 5
    assert t.get(b"set:7") == b"x" * 7


async def test_error_entries_reported_rest_lands(target_redis: RedisServer) -> None:
    seen: list[KeyFailure] = []
    w = StandaloneWriter(_ep(target_redis), WriterOptions(on_failure=seen.append))
    await w.start()
    entries = [Command([b"SET", b"k%d" % i, b"v"], key=b"k%d" % i, tag="string", source_offset=i)
               for i in range(1000)]
    entries[100] = Command([b"RESTORE", b"bad", b"0", b"not a payload", b"REPLACE"], key=b"bad", tag="string",
                         source_offset=100)
    entries[500] = Command([b"LPUSH", b"k1", b"x"], key=b"k1", tag="list", source_offset=500)
    await w.write(entries)
    entries.clear()  # the caller may reuse its list: the writer keeps its own
    await w.flush()
    await w.close()
    assert [(f.key, f.command) for f in w.failures] == [(b"bad", "RESTORE"), (b"k1", "LPUSH")]
    assert "payload" in w.failures[0].error and w.failures[1].error.startswith("WRONGTYPE")
    assert seen == w.failures
    assert w.stats.commands_failed == 2 and w.stats.keys_failed == 2
    assert w.stats.keys_written == 998 and w.stats.commands_written == 998
    assert target_redis.client().dbsize() == 998
    assert w.applied_offset == 999


async def test_busykey_is_skipped_not_failed(source_redis: RedisServer, target_redis: RedisServer) -> None:
    entries = _restore_entries(source_redis, 30)
    for e in entries:
        e.argv.pop()  # no REPLACE
    target_redis.client().set(entries[3].key, b"already here")  # type: ignore[arg-type]
    w = StandaloneWriter(_ep(target_redis), WriterOptions(replace=False))
    await w.start()
    await w.write(entries)
    await w.flush()
    await w.close()
    assert w.stats.keys_skipped == 1 and w.stats.keys_written == 29 and not w.failures
    assert target_redis.client().get(entries[3].key) == b"already here"  # type: ignore[arg-type]


async def test_db_switching_selects_only_on_change(target_redis: RedisServer) -> None:
    target_redis.client().config_resetstat()
    dbs = [0, 0, 3, 3, 3, 1, -1, 1, 0, 5, 5]
    entries = [Command([b"SET", b"k%d" % i, b"%d" % db], db=db, key=b"k%d" % i) for i, db in enumerate(dbs)]
    w = StandaloneWriter(_ep(target_redis))
    await w.start()
    await w.write(entries[:4])
    await w.write(entries[4:])
    await w.flush()
    await w.close()
    # changes: 0->3, 3->1, (any db), 1->0, 0->5
    stats = target_redis.client().info("commandstats")
    assert stats["cmdstat_select"]["calls"] == 4
    for i, db in enumerate(dbs):
        where = 1 if db == -1 else db
        assert target_redis.client(db=where).get(b"k%d" % i) == b"%d" % db


async def test_multi_exec_passes_through_with_inner_errors(target_redis: RedisServer) -> None:
    block = [
        Command([b"MULTI"], key=None),
        Command([b"SET", b"a", b"1"], key=b"a", tag="string", source_offset=1),
        Command([b"LPUSH", b"a", b"x"], key=b"a", source_offset=2),
        Command([b"SET", b"b", b"2"], key=b"b", tag="string", source_offset=3),
        Command([b"EXEC"], key=None, source_offset=4),
    ]
    w = StandaloneWriter(_ep(target_redis))
    await w.start()
    await w.write(block[:2])  # the block may span write calls
    await w.write(block[2:])
    await w.flush()
    await w.close()
    assert [(f.key, f.command) for f in w.failures] == [(b"a", "LPUSH")]
    assert w.failures[0].error.startswith("WRONGTYPE")
    c = target_redis.client()
    assert c.get(b"a") == b"1" and c.get(b"b") == b"2"
    assert w.stats.keys_written == 2 and w.applied_offset == 4


async def test_auth_password_and_acl_user(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("auth", password="s3cret!")
    server.client().execute_command("ACL", "SETUSER", "migrator", "on", ">pw-of-user", "~*", "+@all")
    for url in (f"redis://:s3cret!@127.0.0.1:{server.port}/2", f"redis://migrator:pw-of-user@127.0.0.1:{server.port}/2"):
        w = await open_writer(Endpoint.from_url(url))
        assert isinstance(w, StandaloneWriter)
        await w.write([Command([b"SET", b"who", url.split("@")[0][-4:].encode()], db=2, key=b"who")])
        await w.flush()
        await w.close()
    assert server.client(db=2).get(b"who") == b"user"
    bad = StandaloneWriter(Endpoint.from_url(f"redis://migrator:nope-secret@127.0.0.1:{server.port}"))
    with pytest.raises(Exception) as info:
        await bad.start()
    assert "nope-secret" not in str(info.value) and "WRONGPASS" in str(info.value)


async def test_connection_killed_mid_write(target_redis: RedisServer) -> None:
    w = StandaloneWriter(_ep(target_redis), WriterOptions(batch_bytes=256 << 10, max_bytes_in_flight=1 << 20))
    await w.start()
    entries = [Command([b"SET", b"k%d" % i, b"v" * 1000], key=b"k%d" % i, source_offset=i + 1)
               for i in range(50_000)]
    await w.write(entries[:100])
    await w.flush()
    control = target_redis.client()

    async def kill_soon() -> None:  # once the writes are under way, past the first 100 keys
        await until(lambda: control.dbsize() > 1000, what="writes to reach the target")
        control.client_kill_filter(_type="normal", skipme=True)

    killer = asyncio.create_task(kill_soon())
    with pytest.raises(ConnectionLostError) as info:
        for _ in range(20):
            await w.write(entries)
        await w.flush()
    await killer
    assert target_redis.client().dbsize() < len(entries) or "unacknowledged" in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert w.applied_offset >= 100
    with pytest.raises(ConnectionLostError):
        await w.write(entries[:1])
    await w.close()


async def test_large_values_with_and_without_size(target_redis: RedisServer) -> None:
    big = b"x" * (200 << 10)
    entries = [
        Command([b"SET", b"sized", memoryview(big)], key=b"sized", size=len(big) + 30, tag="string"),
        Command([b"SET", b"small", b"1"], key=b"small", tag="string"),
        Command([b"SET", b"unsized", big], key=b"unsized", tag="string"),
        Command([b"SET", b"small2", bytearray(b"2")], key=b"small2", db=1, tag="string"),
    ]
    w = StandaloneWriter(_ep(target_redis))
    await w.start()
    await w.write(entries)
    await w.flush()
    await w.close()
    c = target_redis.client()
    assert c.get(b"sized") == big and c.get(b"unsized") == big and c.get(b"small") == b"1"
    assert target_redis.client(db=1).get(b"small2") == b"2"
    assert w.stats.keys_written == 4


async def test_a_large_exec_reply_split_across_reads_is_parsed_whole(target_redis: RedisServer) -> None:
    """An EXEC array of many +OK elements arrives in several socket reads; a read made only of
    "+OK" elements is part of that array, not replies of their own (the +OK counting fast path
    once took them for replies: the writer then waited for ever on a reply it had miscounted)."""
    w = StandaloneWriter(_ep(target_redis))
    await w.start()
    try:
        for round_ in range(3):
            n = 200_000  # a 1 MB EXEC array: several reads whatever the socket buffers
            tx = [Command([b"MULTI"]), *(Command([b"SET", b"k%d" % i, b"%d" % round_], key=b"k%d" % i)
                                         for i in range(n)), Command([b"EXEC"], source_offset=round_ + 1)]
            await w.write(tx)
            after = Command([b"SET", b"after", b"%d" % round_], key=b"after", source_offset=round_ + 1)
            await w.write([after])
            await asyncio.wait_for(w.flush(), 60)
            assert w.stats.commands_written == (round_ + 1) * (n + 3)
        assert w.stats.applied_offset == 3
    finally:
        await w.close()
    c = target_redis.client()
    assert c.dbsize() == 200_001 and c.get(b"k199999") == b"2" and c.get(b"after") == b"2"
