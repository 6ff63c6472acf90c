"""SCAN source: a key's expiry is where the source says it is, however late its replies arrive or
its requests reach it (a loaded machine, a slow network) — a relay delays one direction by 2.5 s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from online_workload import Online

from cachemigrate.engine.spec import SourceKind
from cachemigrate.engine.status import LogLevel, Phase
from support.compare import compare_servers
from support.relay import Relay
from support.servers import RedisServer, require_redis6

DELAY = 2.5  # seconds, one way, on every chunk after the first DUMP
TOLERANCE_MS = 1000  # the comparator's default; a 2.5 s shift is far outside it


def _fill(server: RedisServer) -> None:
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(300):
        p.set(f"ttl:{i}", i, px=600_000 + i)
        p.hset(f"h:{i % 30}", f"f{i}", i)
    p.set("persistent", "x")
    p.execute()
    for i in range(30):
        c.pexpire(f"h:{i}", 300_000 + i)


@pytest.mark.parametrize("server", ["redis7", "redis6"])
@pytest.mark.parametrize("direction", ["replies", "requests"])
async def test_expiry_is_the_sources_under_delay(
    direction: str, server: str, redis_factory: Callable[..., RedisServer]
) -> None:
    binary = require_redis6() if server == "redis6" else None
    source = redis_factory("src", binary=binary)
    target = redis_factory("dst")
    _fill(source)
    with Relay(source.port, delay=DELAY, direction=direction, after=b"DUMP") as relay:  # type: ignore[arg-type]
        online = Online(f"redis://127.0.0.1:{relay.port}", target.url, kind=SourceKind.SCAN)
        final = await asyncio.wait_for(online.task, 120)
        assert relay.delayed_chunks > 0
    assert final.phase is Phase.DONE and final.keys_failed == 0
    result = compare_servers([source.client()], [target.client()], ttl_tolerance_ms=TOLERANCE_MS)
    assert result.ok and result.compared == 331, result.summary(5)


async def test_a_user_allowed_neither_pexpiretime_nor_time_is_warned(
    redis_factory: Callable[..., RedisServer],
) -> None:
    source = redis_factory("src6", binary=require_redis6(), password="admin")  # no PEXPIRETIME
    _fill(source)
    source.client().execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@read", "+@connection",
                                    "+info", "+scan", "+dump", "+select", "-time")
    target = redis_factory("dst")
    online = Online(f"redis://app:pw@127.0.0.1:{source.port}", target.url, kind=SourceKind.SCAN)
    final = await asyncio.wait_for(online.task, 60)
    assert final.phase is Phase.DONE and final.keys_failed == 0
    warned = [m for level, m in online.sink.logs if level is LogLevel.WARNING]
    assert any("neither PEXPIRETIME nor TIME" in m for m in warned), online.sink.logs
    result = compare_servers([source.client()], [target.client()])
    assert result.ok and result.compared == 331, result.summary(5)
