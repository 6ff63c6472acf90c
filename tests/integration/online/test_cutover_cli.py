"""`cachemigrate cutover` then `rollback` as a user runs them, with real haproxy fronts: the
migration continues `migrate --incremental`'s checkpoint, the fronts move, writes made through a
front reach the other server by the reverse sync, and both servers end equal."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis
from online_workload import FAST, check_equal, seed

from cachemigrate.engine.fronts import open_front
from support.haproxy import start_haproxy
from support.poll import wait_until
from support.servers import RedisServer

MAIN = "from cachemigrate.cli.app import main; main()"


_STARTED: list[subprocess.Popen[str]] = []


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    return proc


def _reap() -> None:
    """Every CLI process this test started ends and its pipes close, also when it failed (an
    open pipe found by the collector later fails another test with a ResourceWarning)."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _interrupt(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def _backend(url: str) -> int:
    return asyncio.run(open_front(url).backend()).port


def test_cutover_then_rollback(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    a, b = redis_factory("a", args=FAST), redis_factory("b", args=FAST)
    seed(a.client(), n=100)
    hx = start_haproxy(tmp_path / "haproxy", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    try:
        cp, rcp = tmp_path / "cp.json", tmp_path / "reverse.json"
        front = redis.Redis(port=hx.port("a"))
        migrate = _start("migrate", a.url, b.url, "--incremental", "--checkpoint", str(cp), "--quiet")
        wait_until(lambda: cp.exists() and json.loads(cp.read_text())["phase"] == "incremental")
        _interrupt(migrate)
        front.incr("n")  # while nothing replicates: the cutover's migration continues the checkpoint

        fronts = ["--front", hx.url("a"), "--front", hx.url("b")]
        files = ["--checkpoint", str(cp), "--reverse-checkpoint", str(rcp)]
        proc = _start("cutover", a.url, b.url, *fronts, *files, "--quiet")
        # The fronts move one after the other, then the reverse checkpoint is saved: wait for all.
        wait_until(lambda: _backend(hx.url("a")) == b.port and _backend(hx.url("b")) == a.port
                   and rcp.exists(), timeout=60, what="the cutover")
        assert json.loads(rcp.read_text())["source"] == f"127.0.0.1:{b.port}"
        assert redis.Redis(port=hx.port("a")).incr("n") == 2  # on b now, from a's value
        wait_until(lambda: a.client().get("n") == b"2", what="the reverse sync")
        err = _interrupt(proc)
        assert "writes paused" in err and f"checkpoint (saved in {rcp})" in err

        proc = _start("rollback", a.url, b.url, *fronts, *files, "--quiet")
        wait_until(lambda: _backend(hx.url("a")) == a.port and _backend(hx.url("b")) == b.port,
                   timeout=60, what="the rollback")
        assert redis.Redis(port=hx.port("a")).incr("n") == 3
        wait_until(lambda: b.client().get("n") == b"3", what="the migration after the rollback")
        err = _interrupt(proc)
        assert f"checkpoint (saved in {cp})" in err
        check_equal([a.client()], [b.client()])
    finally:
        _reap()
        hx.stop()
