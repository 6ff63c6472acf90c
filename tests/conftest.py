"""Fixtures that start real servers. Every test server listens on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.servers import RedisCluster, RedisServer, start_cluster, start_redis


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start as many redis-servers as a test needs; all are stopped at the end."""
    started: list[RedisServer] = []

    def make(name: str | None = None, **kw: object) -> RedisServer:
        server = start_redis(tmp_path / (name or f"redis{len(started)}"), **kw)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def source_redis(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_factory("source")


@pytest.fixture
def target_redis(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_factory("target")


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    cluster = start_cluster(tmp_path / "cluster", masters=3)
    yield cluster
    cluster.stop()
