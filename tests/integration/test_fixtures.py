"""The server fixtures themselves: real processes, isolated ports, never the machine's 6379."""

from support.servers import RedisServer, require_redis6, start_redis


def test_two_servers_are_independent(source_redis: RedisServer, target_redis: RedisServer) -> None:
    assert source_redis.port != target_redis.port
    assert 6379 not in (source_redis.port, target_redis.port)
    source_redis.client().set(b"k", b"v")
    assert target_redis.client().get(b"k") is None
    assert source_redis.client().get(b"k") == b"v"


def test_redis6_binary_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    binary = require_redis6()
    server = start_redis(tmp_path / "r6", binary=binary)
    try:
        info = server.client().info("server")
        assert info["redis_version"] == "6.0.9"
    finally:
        server.stop()
