"""`cachemigrate migrate`: Ctrl-C stops cleanly and prints the checkpoint; a rerun continues."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from online_workload import FAST, Workload, check_equal, seed

from cachemigrate.engine.exactly_once import MARKER_PREFIX
from support.poll import wait_until
from support.servers import RedisServer

MAIN = "from cachemigrate.cli.app import main; main()"


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", MAIN, "migrate", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(pred: Callable[[], object], timeout: float = 30) -> None:
    wait_until(pred, timeout, interval=0.1)


def _saved_incremental(cp: Path) -> bool:
    """A periodic checkpoint save of the incremental phase is on disk (saved atomically)."""
    return cp.exists() and json.loads(cp.read_text())["phase"] == "incremental"


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
    _wait(lambda: _saved_incremental(cp))  # a periodic checkpoint save
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
    _persist_short(source)
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
    assert err.strip().splitlines()[-1].startswith("cachemigrate: error: cannot connect to redis://127.0.0.1:1:")


def _incremental_checkpoint(source: RedisServer, target: RedisServer, cp: Path) -> dict[str, object]:
    """A `migrate --incremental --checkpoint` run stopped with Ctrl-C in its incremental phase."""
    dst_c = target.client()
    proc = _start(source.url, target.url, "--incremental", "--checkpoint", str(cp), "--quiet")
    _wait(lambda: dst_c.dbsize() > 0)
    source.client().set("live", 1)  # through the command stream
    _wait(lambda: dst_c.get("live") == b"1")
    _wait(lambda: _saved_incremental(cp))  # a periodic checkpoint save
    rc, err = _interrupt(proc)
    assert rc == 0, err
    saved: dict[str, object] = json.loads(cp.read_text())
    assert saved["phase"] == "incremental"
    return saved


def test_full_only_resume_of_an_incremental_checkpoint_catches_up_and_ends(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Without --incremental, a +CONTINUE resume applies the backlog up to the source's offset at
    the resume and ends (it used to follow the stream until Ctrl-C)."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=100)
    cp = tmp_path / "cp.json"
    src_c, dst_c = source.client(), target.client()
    saved = _incremental_checkpoint(source, target, cp)

    src_c.incr("while-stopped")
    src_c.rpush("list:1", "while-stopped")
    source.client(db=1).set("db1:while-stopped", "x")
    src_c.delete("str:3")
    dst_c.set("target-only", 1)  # a full resync would flush it: +CONTINUE keeps it
    for _ in range(3):  # quiet seconds: the master's PINGs only
        proc = _start(source.url, target.url, "--checkpoint", str(cp), "--quiet")
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert dst_c.get("target-only") == b"1", "flushed: the resume was not a +CONTINUE"
        assert dst_c.get("while-stopped") == b"1" and target.client(db=1).get("db1:while-stopped") == b"x"
        now = json.loads(cp.read_text())
        assert now["phase"] == "incremental" and now["offset"] > saved["offset"]  # type: ignore[operator]
        time.sleep(0.5)
    dst_c.delete("target-only")
    check_equal([src_c, source.client(db=1)], [dst_c, target.client(db=1)])


def test_full_only_resume_ends_while_the_source_keeps_writing(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """The end is the source's offset when the run resumed: later writes do not hold it up."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    cp = tmp_path / "cp.json"
    _incremental_checkpoint(source, target, cp)
    for i in range(2000):
        source.client().set(f"while-stopped:{i}", i)
    workload = Workload(source.port, pause=0.001)
    workload.start()
    try:
        proc = _start(source.url, target.url, "--checkpoint", str(cp), "--quiet")
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        workload.stop()
    assert proc.returncode == 0, err
    assert target.client().get("while-stopped:1999") == b"1999"


def test_full_only_resume_without_info_ends_when_the_stream_is_idle(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """A source user that may replicate but not run INFO: the end is the first idle second."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    cp = tmp_path / "cp.json"
    _incremental_checkpoint(source, target, cp)
    src_c = source.client()
    src_c.acl_setuser("repl", enabled=True, passwords=["+pw"], commands=["+psync", "+sync", "+replconf",
                                                                      "+ping", "+auth", "+client"])
    src_c.incr("while-stopped")
    restricted = f"redis://repl:pw@127.0.0.1:{source.port}"
    proc = _start(restricted, target.url, "--checkpoint", str(cp), "--quiet")
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "cannot read the source's replication offset" in err
    assert target.client().get("while-stopped") == b"1"


# ---- no trace left: the exactly-once marker (engine/exactly_once.py) ---------------------------

def _markers(server: RedisServer) -> list[bytes]:
    return sorted(server.client().scan_iter(match=MARKER_PREFIX + b"*"))


def _persist_short(source: RedisServer) -> None:
    """DBSIZE counts the seed's 1.5 s key until it is expired, at its own moment on each side: it
    must not expire between a migration and the DBSIZE check (in any seeded db)."""
    for db in (0, 1):
        source.client(db=db).persist("short")


def _dbsizes(server: RedisServer) -> dict[int, int]:
    return {db: server.client(db=db).dbsize() for db in range(4)}


def test_full_only_migrate_leaves_no_trace(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    _persist_short(source)
    proc = _start(source.url, target.url, "--quiet")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _markers(target) == []
    assert _dbsizes(target) == _dbsizes(source)
    check_equal([source.client(), source.client(db=1)], [target.client(), target.client(db=1)])


def test_incremental_migrate_stopped_without_checkpoint_leaves_no_trace(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """Nothing can resume a run without --checkpoint: its Ctrl-C is the end, and the marker goes."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    src_c, dst_c = source.client(), target.client()
    _persist_short(source)
    proc = _start(source.url, target.url, "--incremental", "--quiet")
    _wait(lambda: dst_c.dbsize() > 0)
    src_c.incr("live")  # through the command stream: the marker is written with it
    _wait(lambda: dst_c.get("live") == b"1")
    _wait(lambda: _markers(target) != [])
    rc, err = _interrupt(proc)
    assert rc == 0, err
    assert _markers(target) == []
    assert _dbsizes(target) == _dbsizes(source)


def test_marker_kept_while_resumable_then_gone_when_finished(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """A run stopped with --checkpoint may be resumed: the marker stays; the full-only run that
    finishes the migration from that checkpoint removes it, and applied nothing twice."""
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=50)
    src_c = source.client()
    _persist_short(source)
    cp = tmp_path / "cp.json"
    _incremental_checkpoint(source, target, cp)
    assert _markers(target) == [MARKER_PREFIX + f"{{127.0.0.1:{source.port}}}".encode()]
    for _ in range(5):
        src_c.incr("ctr")  # applied twice would show
    proc = _start(source.url, target.url, "--checkpoint", str(cp), "--quiet")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert target.client().get("ctr") == b"5"
    assert _markers(target) == []
    assert _dbsizes(target) == _dbsizes(source)
