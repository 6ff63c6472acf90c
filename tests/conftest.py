"""Fixtures that start real servers. Every test server listens on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.require import check_marks, in_ci
from support.servers import RedisCluster, RedisServer, start_cluster, start_redis

# The web console's browser fixtures (a plugin: see its docstring).
pytest_plugins = ["support.console"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(ok, missing): support.require.requirement; fails in CI, skips locally"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_marks(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """In CI no test may skip: a skip that did not go through support.require fails as well."""
    rep: pytest.TestReport = yield
    if in_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = (
            f"skipped in CI ({reason}). In CI every prerequisite must be present: make test "
            "provides them; declare new ones with support.require.require/requirement"
        )
    return rep


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """The same for a whole module skipped at collection (allow_module_level, importorskip)."""
    rep: pytest.CollectReport = yield
    if in_ci() and rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"module skipped in CI ({reason}); use support.require instead"
    return rep


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
