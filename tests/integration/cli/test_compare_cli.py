"""`cachemigrate compare` as a user runs it: a summary, --json, exit 0 only when nothing differs,
--repair, and one readable line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cachemigrate.engine.exactly_once import MARKER_PREFIX
from support.compare import compare_servers
from support.servers import RedisServer

CLI = str(Path(sys.executable).parent / "cachemigrate")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], check=False, capture_output=True, text=True, timeout=120)


def _seed(server: RedisServer) -> None:
    for db in (0, 2):
        p = server.client(db=db).pipeline(transaction=False)
        for i in range(300):
            p.set(f"s:{i}", f"v{i}")
            p.hset(f"h:{i % 20}", f"f{i}", i)
            p.rpush(f"l:{i % 20}", i)
            p.zadd(f"z:{i % 20}", {f"m{i}": i / 3})
            if i % 10 == 0:
                p.pexpire(f"s:{i}", 600_000)
        p.xadd("st", {"f": "v"})
        p.execute()


def _migrated(redis_factory: Callable[..., RedisServer]) -> tuple[RedisServer, RedisServer]:
    source = redis_factory("src", args=["--repl-diskless-sync-delay", "0"])
    target = redis_factory("dst")
    _seed(source)
    res = _run("migrate", source.url, target.url, "--quiet")
    assert res.returncode == 0, res.stderr
    return source, target


def _sides(server: RedisServer) -> list[object]:
    return [server.client(db=0), server.client(db=2)]


def test_clean_migration_compares_equal(redis_factory: Callable[..., RedisServer]) -> None:
    source, target = _migrated(redis_factory)
    res = _run("compare", source.url, target.url)
    assert res.returncode == 0, res.stderr
    assert "keys compared: 722 (every key)" in res.stdout, res.stdout
    assert "mismatches: 0 (none) OK" in res.stdout
    res = _run("compare", source.url, target.url, "--sample", "100", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is True and report["mode"] == "sample" and report["keys_compared"] >= 100


def test_tampered_target_fails_then_repair_makes_it_equal(redis_factory: Callable[..., RedisServer]) -> None:
    source, target = _migrated(redis_factory)
    t = target.client()
    t.set("s:1", "changed")  # value
    t.delete("h:2")  # missing
    t.set("surplus", "x")  # extra
    t.persist("s:10")  # ttl
    t2 = target.client(db=2)
    t2.delete("l:3")
    t2.sadd("l:3", "a set now")  # type
    t2.set(MARKER_PREFIX + b"{127.0.0.1:1}", "r 1 0")  # the offset marker is no difference

    res = _run("compare", source.url, target.url, "--json", "--rounds", "1", "--delay", "0.05")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["by_kind"] == {"missing": 1, "extra": 1, "type": 1, "value": 1, "ttl": 1}, report
    assert report["mismatches"] == 5 and report["converged"] == 0
    assert {(e["db"], e["key"], e["kind"]) for e in report["examples"]} == {
        (0, "s:1", "value"), (0, "h:2", "missing"), (0, "surplus", "extra"), (0, "s:10", "ttl"),
        (2, "l:3", "type"),
    }
    assert res.stderr.strip().splitlines() == [
        "cachemigrate: error: source and target differ: 5 keys (missing in target 1, extra in target 1, "
        "type differs 1, value differs 1, ttl differs 1)"
    ]

    res = _run("compare", source.url, target.url, "--repair", "--delay", "0.05")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "first pass: 5 different" in res.stdout and "repaired: 5 keys copied again" in res.stdout
    assert "mismatches: 0 (none) OK" in res.stdout
    result = compare_servers(_sides(source), _sides(target))  # type: ignore[arg-type]
    assert result.ok and result.compared == 722, result.summary()
    assert _run("compare", source.url, target.url).returncode == 0


def test_bad_input_is_one_line(target_redis: RedisServer) -> None:
    for args, start in (
        (["--sample", "0"], "cachemigrate: error: --sample must be at least 1"),
        (["--rounds", "-1"], "cachemigrate: error: --rounds must be 0 or more"),
    ):
        res = _run("compare", target_redis.url, target_redis.url, *args)
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr.strip().splitlines()[-1].startswith(start), res.stderr
    res = _run("compare", "redis://127.0.0.1:1", target_redis.url)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("cachemigrate: error: cannot connect to redis://127.0.0.1:1"), lines
