"""`make demo`, step 3: `cachemigrate cutover` and `rollback` through haproxy fronts while a client
writes through the front; every acknowledged write must end on the server the front ends on,
exactly once, and both servers must compare equal."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cachemigrate.engine.compare import compare
from cachemigrate.engine.fronts import open_front
from cachemigrate.protocol.endpoint import Endpoint
from support.front_writer import FrontWriter, verify
from support.haproxy import start_haproxy

PREFIX = "demo:cutover"
COUNTER = f"{PREFIX}:counter"


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _at(url: str) -> int:
    return asyncio.run(open_front(url).backend()).port


def _interrupt(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args[1]} failed: {err.strip()[-500:]}")
    return err


def run(cli: str, work: Path, source: Any, target: Any, step: Callable[[str], None]) -> bool:
    binary = shutil.which("haproxy")
    if binary is None:
        raise RuntimeError("haproxy is not installed (make demo installs it: .ci/provision haproxy)")
    step("cutover and rollback through haproxy fronts while a client writes through them")
    hx = start_haproxy(work / "haproxy", {"a": ("127.0.0.1", source.port), "b": ("127.0.0.1", target.port)},
                       binary=binary)
    try:
        front_a, front_b = hx.url("a"), hx.url("b")
        print(f"front a at 127.0.0.1:{hx.port('a')} -> {source.port}; front b at 127.0.0.1:{hx.port('b')} "
              f"-> {target.port} (haproxy Runtime API {hx.admin_socket})")
        writer = FrontWriter(hx.port("a"), rate=1000, prefix=PREFIX).start()
        cp, rcp = work / "cutover.json", work / "reverse.json"
        args = [source.url, target.url, "--front", front_a, "--front", front_b,
                "--checkpoint", str(cp), "--reverse-checkpoint", str(rcp), "--quiet"]
        for name, there, side in (("cutover", target.port, "reverse"), ("rollback", source.port, "forward")):
            proc = subprocess.Popen([cli, name, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    text=True)
            _wait(lambda p=proc, t=there: p.poll() is not None or _at(front_a) == t, 300, f"the {name}")
            if proc.poll() is not None:
                raise RuntimeError(f"{name} ended: {proc.communicate()[1].strip()[-500:]}")
            asyncio.run(writer.more(2000))  # through the front, on the other server now
            file = rcp if name == "cutover" else cp
            _wait(lambda f=file: f.exists() and json.loads(f.read_text())["phase"] == "incremental",
                  60, f"the {side} sync's checkpoint")
            if name == "rollback":  # the last writes reach the target before the sync stops
                result = writer.stop()
                _wait(lambda: target.client().get(COUNTER) == source.client().get(COUNTER), 60,
                      "the last writes")
            lines = [ln for ln in _interrupt(proc).splitlines() if "writes paused" in ln]
            print(f"`cachemigrate {name}`: {lines[0] if lines else '(no report line)'}")
            print(f"front a -> {_at(front_a)}, front b -> {_at(front_b)}")
        verdict = verify(source.client(), result, prefix=PREFIX)
        print(f"client: {result.writes:,} acknowledged writes ({result.rate:,.0f}/s), longest gap "
              f"{result.max_gap * 1000:.1f} ms, {result.error_count} connection errors; on the source: "
              f"lost {len(verdict.lost)}, doubled {len(verdict.doubled)}, counter {verdict.counter:,}")
        report = asyncio.run(compare(Endpoint.from_url(source.url), Endpoint.from_url(target.url)))
        print(f"keys compared: {report.keys_compared:,}; mismatched {report.mismatched}, missing "
              f"{report.missing}, extra {report.extra}")
        return verdict.ok and report.ok
    finally:
        hx.stop()
