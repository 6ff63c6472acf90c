"""The server fixtures themselves: real processes, isolated ports, never the machine's 6379."""

from support.servers import RedisServer, require_redis6, require_valkey8, start_redis


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


def test_valkey8_binary_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = start_redis(tmp_path / "v8", binary=require_valkey8())
    try:
        info = server.client().info("server")
        assert info["valkey_version"].startswith("8.0.") and info["server_name"] == "valkey"
        server.client().set("k", "v")
        assert server.save().read_bytes().startswith(b"REDIS0011")  # Valkey 8 writes RDB 11
    finally:
        server.stop()
