"""`cachemigrate migrate`: Ctrl-C stops cleanly and prints the checkpoint; a rerun continues."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from online_workload import FAST, check_equal, seed

from support.servers import RedisServer

MAIN = "from cachemigrate.cli.app import main; main()"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", MAIN, "migrate", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(pred: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_ctrl_c_then_resume_from_checkpoint(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=100)
    cp = tmp_path / "cp.json"
    src_c, dst_c = source.client(), target.client()

    proc = _start(source.url, target.url, "--incremental", "--checkpoint", str(cp), "--quiet")
    _wait(lambda: dst_c.dbsize() > 0)
    src_c.set("live", 1)  # through the command stream
    _wait(lambda: dst_c.get("live") == b"1")
    time.sleep(1.2)  # a periodic checkpoint save
    rc, err = _interrupt(proc)
    assert rc == 0, err
    assert "checkpoint (saved in" in err
    saved = json.loads(cp.read_text())
    assert saved["phase"] == "incremental" and saved["source"] == f"127.0.0.1:{source.port}"

    src_c.incr("while-stopped")
    src_c.rpush("list:1", "while-stopped")
    proc = _start(source.url, target.url, "--incremental", "--checkpoint", str(cp), "--quiet")
    _wait(lambda: dst_c.get("while-stopped") == b"1")
    src_c.set("live2", 1)
    _wait(lambda: dst_c.get("live2") == b"1")
    rc, err = _interrupt(proc)
    assert rc == 0, err
    check_equal([src_c], [dst_c])
    assert json.loads(cp.read_text())["offset"] > saved["offset"]


def test_full_only_run_ends_by_itself(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    proc = _start(source.url, target.url, "--db", "1", "--resume", "manual")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "keys written" in out
    assert target.client(db=0).dbsize() == 0
    assert target.client(db=1).dbsize() == source.client(db=1).dbsize()


def test_bad_resume_mode_is_one_line(redis_factory: Callable[..., RedisServer]) -> None:
    proc = _start("redis://127.0.0.1:1", "redis://127.0.0.1:2", "--resume", "sometimes")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("cachemigrate: error: --resume must be auto or manual")


def test_unreachable_source_fails_at_once(redis_factory: Callable[..., RedisServer]) -> None:
    target = redis_factory("dst")
    proc = _start("redis://127.0.0.1:1", target.url, "--incremental", "--quiet")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("cachemigrate: error: cannot connect to 127.0.0.1:1")
