"""The incremental phase's runs (engine/commands.py "Runs"): commands passed to a standalone target
as the bytes the source sent, with the C framing scan and with its pure-Python twin; the target
ends up equal to the source (db changes, transactions, scripts, FLUSHDB, values larger than a read)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from online_workload import FAST, Online, Workload, check_equal

from cachemigrate.engine.spec import DbMode
from cachemigrate.engine.status import Phase
from cachemigrate.protocol import frames
from support.compare import compare_keyspaces, keyspace
from support.require import require
from support.servers import RedisServer


@pytest.fixture(params=["c", "python"])
def c_walker(request: pytest.FixtureRequest) -> bool:
    """Whether the C framing scan runs (PipelineOptions.c_walker; False: the pure-Python twin)."""
    if request.param == "c":
        require(frames.HAS_C_SCAN, "the C framing scan cachemigrate.protocol._frames (make install "
                "builds it with gcc; CACHEMIGRATE_NO_EXT unset)")
    return bool(request.param == "c")


async def test_runs_apply_what_the_source_did(
    redis_factory: Callable[..., RedisServer], c_walker: bool
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    src = source.client()
    src.set("seed", "1")
    online = Online(source.url, target.url, c_walker=c_walker)
    writer = Workload(source.port, pause=0.0002)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        writer.start()
        await writer.more(1500)
        big = src.pipeline(transaction=False)
        for i in range(3):  # each larger than one read of the link: a command arriving in pieces
            big.set(f"big:{i}", bytes([65 + i]) * (3 << 20))
        for i in range(3000):  # many commands in one read: long runs
            big.incr(f"burst:{i % 50}")
        big.execute()
        await writer.more(500)
        assert writer.stop() > 1000
        await online.wait_applied(src)
        check_equal([src], [target.client()])
    finally:
        writer.stop_event.set()
        final = await online.finish()
    assert final.keys_failed == 0 and final.commands_failed == 0, online.sink.logs[-5:]


async def test_runs_follow_the_db_mode(redis_factory: Callable[..., RedisServer], c_walker: bool) -> None:
    """db mode only: source db 1 into target db 2; the runs of db 0 are left out whole."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    db0, db1 = source.client(db=0), source.client(db=1)
    online = Online(source.url, target.url, db_mode=DbMode.ONLY, db=1, target_db=2, c_walker=c_walker)
    try:
        await online.wait_for(lambda s: s.phase is Phase.INCREMENTAL)
        for i in range(200):
            db0.set(f"left:{i}", i)
            db1.incr(f"ctr:{i % 7}")
            db1.rpush("list", i)
        await online.wait_applied(db0)
        assert target.client(db=0).dbsize() <= 1  # the marker, nothing of db 0
        moved = {(2, key): state for (_, key), state in keyspace([db0], [1]).items()}
        result = compare_keyspaces(moved, keyspace([target.client()], [2]))
        assert result.ok and result.compared == 8, result.summary()
    finally:
        await online.finish()
