"""The CLI under measurement: one run into a fresh empty target, its wall time, CPU and peak RSS.

Shared by the file, bucket and service benchmarks (``run``, ``bucket``, ``service_bucket``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.refs import RedisServer, Timing, cpu_seconds, start_redis

CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "cachemigrate"


def _watch_peak_rss(pid: int, peak: list[int]) -> None:
    """Keep the process's own high-water RSS (VmHWM, kB) until it is gone.

    Not wait4's ru_maxrss: the child is spawned with vfork, and Linux carries the parent's
    high-water mark (this bench process, hundreds of MB after REF ingest of the big keys) into
    the child's at exec. VmHWM is that of the CLI's own address space.
    """
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path, "rb") as fh:
                status = fh.read()
        except OSError:
            return
        at = status.find(b"VmHWM:")
        if at < 0:  # a zombie: the address space is gone
            return
        peak[0] = max(peak[0], int(status[at + 6 :].split()[0]))
        time.sleep(0.01)


def run_cli(args: list[str], target: RedisServer, name: str) -> Timing:
    """Run the CLI once; wall time, its CPU (wait4), peak RSS (VmHWM) and the target's CPU."""
    before = cpu_seconds(target.proc.pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    watcher = threading.Thread(target=_watch_peak_rss, args=(proc.pid, peak), daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    watcher.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed: {err.strip()[-500:]}")
    return Timing(name, secs, {"cachemigrate": usage.ru_utime + usage.ru_stime,
                               "target": cpu_seconds(target.proc.pid) - before},
                  peak_rss_mb=peak[0] / 1024)


def fresh_target(work: Path, tag: str) -> RedisServer:
    return start_redis(work / f"target-{tag}")


def into_fresh_target(
    work: Path, tag: str, name: str, keys: int, args: Callable[[str], list[str]]
) -> Timing:
    """Run the CLI (``args(target_url)``) into a new empty target; check it got every key."""
    tgt = fresh_target(work, tag)
    try:
        t = run_cli(args(tgt.url), tgt, name)
        got = tgt.client().dbsize()
        if got != keys:
            raise RuntimeError(f"{name} wrote {got} keys, expected {keys}")
        return t
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)
