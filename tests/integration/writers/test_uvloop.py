"""The data path runs under uvloop too (uvicorn's default loop when the service is served)."""

from __future__ import annotations

from cachemigrate.engine.entry import Command
from cachemigrate.engine.writers import open_writer
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint
from support.require import require_module
from support.servers import RedisServer

uvloop = require_module("uvloop", "it comes with uvicorn[standard] (make install)")


def test_connection_and_writer_under_uvloop(target_redis: RedisServer) -> None:
    ep = Endpoint.from_url(target_redis.url)

    async def go() -> int:
        conn = await Connection.open(ep)
        assert await conn.execute(b"PING") in (b"PONG", "PONG")
        await conn.close()
        writer = await open_writer(ep)
        keys = [b"k%d" % i for i in range(100)]
        await writer.write([Command([b"SET", k, b"v"], 0, k, tag="string") for k in keys])
        await writer.flush()
        await writer.close()
        return writer.stats.keys_written

    assert uvloop.run(go()) == 100
    assert target_redis.client().dbsize() == 100
