"""Malformed replication streams from a fake master (support.fake_master): a clean error, soon.

Each reply below is what the fake master sends to PSYNC, then it closes the connection. Whatever
the resume mode, a server that breaks the protocol fails the task with a CacheMigrateError naming
the source (retrying would get the same answer, and a new full sync each time); a transfer that
is merely cut short is a lost link: auto reconnects (and here gets a whole RDB the second time),
manual stops with the resume error. No case may hang: each is bounded by asyncio.wait_for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from online_workload import Online

from cachemigrate.engine.spec import ResumeMode
from cachemigrate.engine.status import Phase
from cachemigrate.errors import (
    CacheMigrateError,
    ConnectionLostError,
    ProtocolError,
    RdbFormatError,
    ResumeError,
)
from cachemigrate.protocol.endpoint import Endpoint
from cachemigrate.protocol.replication import ReplicationLink
from support.compare import compare_servers
from support.fake_master import FakeMaster, bulk, fullresync
from support.servers import RedisServer, start_redis

BOUND = 20  # seconds: far more than any case takes; a hang fails here


@pytest.fixture(scope="module")
def rdb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real RDB (Redis 7.0) with a few keys of several types (made once for the module)."""
    server = start_redis(tmp_path_factory.mktemp("rdb"))
    try:
        c = server.client()
        c.set("a", 1)
        c.rpush("l", *range(100))
        c.hset("h", mapping={"f": "v", "g": "w"})
        c.zadd("z", {"m": 1.5})
        return server.save().read_bytes()
    finally:
        server.stop()


def _hostile(rdb: bytes) -> dict[str, tuple[bytes, type[CacheMigrateError], str]]:
    """name: (reply to PSYNC, error class, words of the message)."""
    return {
        "garbage after +FULLRESYNC": (fullresync() + b"HELLO WORLD\r\n", ProtocolError,
                                      "expected the RDB bulk header"),
        "bad +FULLRESYNC line": (b"+FULLRESYNC nonsense\r\n", ProtocolError, "bad FULLRESYNC reply"),
        "a bulk instead of a PSYNC reply": (b"$5\r\nhello\r\n", ProtocolError, "unexpected PSYNC reply"),
        "bulk length too short": (fullresync() + bulk(rdb, len(rdb) - 20), RdbFormatError,
                                  "ended inside a record"),
        "bulk length too long": (fullresync() + bulk(rdb + b"*1\r\n$4\r\nPING\r\n", len(rdb) + 14),
                                 ProtocolError, "14 bytes after the end of the RDB"),
        "negative argument length in the stream": (
            fullresync() + bulk(rdb) + b"*2\r\n$3\r\nSET\r\n$-7\r\nzz\r\n", ProtocolError,
            "bad bulk length -7"),
        "inline line in the stream": (fullresync() + bulk(rdb) + b":garbage\r\n", ProtocolError,
                                      "not a RESP array"),
        "damaged RDB": (fullresync() + bulk(rdb[:40] + b"\xff" * 8 + rdb[48:]), RdbFormatError, "offset"),
    }


CASES = list(_hostile(b"REDIS0010"))


@pytest.mark.parametrize("mode", [ResumeMode.AUTO, ResumeMode.MANUAL])
@pytest.mark.parametrize("case", CASES)
async def test_hostile_stream_fails_cleanly(
    redis_factory: Callable[..., RedisServer], rdb: bytes, case: str, mode: ResumeMode
) -> None:
    reply, error, words = _hostile(rdb)[case]
    target = redis_factory("dst")
    async with FakeMaster([reply]) as master:
        online = Online(master.url, target.url, resume_mode=mode)
        with pytest.raises(error) as raised:
            await asyncio.wait_for(online.task, BOUND)
    assert words in str(raised.value) and f"127.0.0.1:{master.port}" in str(raised.value)
    assert master.psyncs == 1  # not asked again: the answer would be the same
    last = online.sink.last
    assert last is not None and last.phase is Phase.FAILED


async def test_cut_transfer_is_a_lost_link_auto_reconnects(
    redis_factory: Callable[..., RedisServer], rdb: bytes
) -> None:
    target = redis_factory("dst")
    cut = fullresync() + bulk(rdb[: len(rdb) // 2], len(rdb))  # then the connection closes
    async with FakeMaster([cut, fullresync() + bulk(rdb)], close=[True, False]) as master:
        online = Online(master.url, target.url, resume_mode=ResumeMode.AUTO)
        try:
            await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL, timeout=BOUND)
        finally:
            final = await online.finish()
    assert master.psyncs == 2 and final.phase is Phase.STOPPED
    assert any("replication link lost" in m for _, m in online.sink.logs)
    # What the second, whole RDB holds: load it into a server of our own to compare.
    reference = redis_factory("ref")
    reference.stop()
    reference.rdb_path.write_bytes(rdb)
    reference.restart()
    report = compare_servers([reference.client()], [target.client()])
    assert report.ok and report.compared == 4, report.summary()


async def test_cut_transfer_in_manual_mode_is_the_resume_error(
    redis_factory: Callable[..., RedisServer], rdb: bytes
) -> None:
    target = redis_factory("dst")
    async with FakeMaster([fullresync() + bulk(rdb[: len(rdb) // 2], len(rdb))]) as master:
        online = Online(master.url, target.url, resume_mode=ResumeMode.MANUAL)
        with pytest.raises(ResumeError, match=r"closed the replication link.*resume mode is manual"):
            await asyncio.wait_for(online.task, BOUND)


async def test_silent_master_times_out() -> None:
    # The bulk header, then nothing, the connection open: the replication timeout ends the wait.
    async with FakeMaster([fullresync() + b"$1000\r\nREDIS0010"], close=False) as master:
        link = ReplicationLink(Endpoint.from_url(master.url), repl_timeout=0.5)
        await link.connect()
        res = await link.psync(None, -1)
        assert res.full
        with pytest.raises(ConnectionLostError, match=r"no data from .* for 0\.5 s"):
            async for _ in link.rdb():
                pass
        await link.close()
