"""`cachemigrate migrate` when the target goes away (issue 13): with --resume auto it waits and
continues, with --resume manual it ends with one readable line and a non-zero exit."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from online_workload import FAST, check_equal, seed

from support.poll import wait_until
from support.servers import RedisServer

MAIN = "from cachemigrate.cli.app import main; main()"


class Cli:
    """`cachemigrate migrate` as a subprocess; its stderr lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", MAIN, "migrate", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def end(self, *, interrupt: bool) -> int:
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(30)
        self._reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return rc


def test_migrate_waits_for_the_target(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst", args=["--appendonly", "yes", "--appendfsync", "always"])
    seed(source.client(), n=100)
    src, dst = source.client(), target.client()
    cli = Cli(source.url, target.url, "--incremental", "--checkpoint", str(tmp_path / "cp.json"), "--quiet")
    try:
        src.set("live", 1)
        wait_until(lambda: dst.get("live") == b"1", 30, what="the stream to reach the target")
        target.kill()
        src.incr("while-down")
        wait_until(lambda: cli.said("waiting for it: attempt 1"), 30, what="the CLI to wait")
        target.restart()
        wait_until(lambda: dst.get("while-down") == b"1", 60, what="the write made while it was down")
        src.incr("while-down")
        wait_until(lambda: dst.get("while-down") == b"2", 30, what="the stream to go on")
    finally:
        rc = cli.end(interrupt=True)
    assert rc == 0, "".join(cli.lines)
    check_equal([src], [dst])


def test_migrate_manual_ends_with_one_line(redis_factory: Callable[..., RedisServer]) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    src, dst = source.client(), target.client()
    src.set("k", "v")
    cli = Cli(source.url, target.url, "--incremental", "--resume", "manual", "--quiet")
    wait_until(lambda: dst.get("k") == b"v", 30, what="the full sync")
    src.set("k2", "v")
    wait_until(lambda: dst.get("k2") == b"v", 30, what="the stream")
    target.kill()
    src.set("k3", "v")
    rc = cli.end(interrupt=False)
    assert rc != 0
    errors = [line for line in cli.lines if "resume mode is manual" in line]
    assert errors and "Traceback" not in "".join(cli.lines), "".join(cli.lines)
