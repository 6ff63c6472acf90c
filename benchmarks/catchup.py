"""REF catch-up: how fast a lagging consumer drains a replication backlog (../shared/bench/README.md).

    python -m benchmarks.catchup [--writes 200000] [--repeat 3] [--profile py-spy|none] [--baseline DIR]

One source (``repl-backlog-size 2gb``, ``client-output-buffer-limit replica 0 0 0``), a native
replica of it (``redis-server --replicaof``) and ``cachemigrate migrate --incremental`` (the CLI)
into an empty target, all in sync; with ``--baseline DIR`` also the CLI of another source tree
(``git archive main | tar -x -C DIR``) into its own target, for a before/after in the same run.
Each round freezes every consumer with SIGSTOP, pipes ``--writes`` SETs of 64-byte values (a
quarter of them overwrites, the last one a sentinel) into the source, then releases the consumers
one at a time and times until the sentinel is visible on each one's target: the drains do not
compete with each other for the CPU; the source, already idle, only sends. Figures: writes/s,
the ratio to the native replica, CPU seconds of each process during its drain. With ``--profile
py-spy`` each migrator's drain in the last round is recorded (``py-spy record``: collapsed stacks
in bench-out/; py-spy is pip-installed into the venv by hand).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.cli_run import CLI
from benchmarks.refs import BENCH_DIR, RedisServer, cpu_seconds, pipe_into, start_redis

VALUE = b"v" * 64
SOURCE_ARGS = ["--repl-backlog-size", "2gb", "--client-output-buffer-limit", "replica 0 0 0",
               "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
POLL = 0.001


@dataclass
class Drain:
    seconds: float
    cpu: dict[str, float]


def writes_file(n: int, rnd: int) -> Path:
    """``n`` SETs of 64-byte values; every fourth one overwrites an earlier key; the last one is
    the sentinel ``catchup:last`` = the round number. Made once per (n, round) in bench-out/."""
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"catchup-{n}-r{rnd}.resp"
    if path.exists():
        return path
    parts: list[bytes] = []
    prefix = b"cu%d:" % rnd
    for i in range(n - 1):
        k = prefix + b"%d" % (i // 2 if i % 4 == 3 else i)
        parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$64\r\n%b\r\n" % (len(k), k, VALUE))
    last = b"%d" % rnd
    parts.append(b"*3\r\n$3\r\nSET\r\n$12\r\ncatchup:last\r\n$%d\r\n%b\r\n" % (len(last), last))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(parts))
    os.replace(tmp, path)
    return path


def wait_value(server: RedisServer, key: str, value: bytes, timeout: float) -> float:
    """Poll ``server`` until ``key`` holds ``value``; the monotonic time it was seen."""
    c = server.client(socket_timeout=timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if c.get(key) == value:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{key} never reached {value!r} on port {server.port}")
            time.sleep(POLL)
    finally:
        c.close()


def drain(pid: int, server: RedisServer, value: bytes, source_pid: int) -> Drain:
    """SIGCONT ``pid`` and time until the sentinel is visible on ``server``; CPU seconds of the
    consumer, of ``server`` when it is another process, and of the source."""
    pids = {"consumer": pid, "source": source_pid}
    if server.proc.pid != pid:
        pids["target"] = server.proc.pid
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    seen = wait_value(server, "catchup:last", value, 300)
    return Drain(seen - t0, {k: cpu_seconds(p) - before[k] for k, p in pids.items()})


@dataclass
class Consumer:
    """One lagging consumer of the source: a native replica, or a migrator (its own target)."""

    name: str
    pid: int
    target: RedisServer
    proc: subprocess.Popen[bytes] | None = None  # a migrator
    drains: list[Drain] = field(default_factory=list)


def _migrator(name: str, cmd: list[str], src: RedisServer, work: Path, env: dict[str, str]) -> Consumer:
    tgt = start_redis(work / f"target-{name}")
    log = work / f"migrate-{name}.log"
    proc = subprocess.Popen([*cmd, "migrate", src.url, tgt.url, "--incremental", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    return Consumer(name, proc.pid, tgt, proc)


def run(
    work: Path, writes: int, repeat: int, profile: str | None = None, baseline: Path | None = None
) -> list[Consumer]:
    """The drains of every consumer, round by round; ``baseline``: another source tree of
    cachemigrate (its ``src``, run with this venv's Python) measured beside this one."""
    src = start_redis(work / "source", args=SOURCE_ARGS)
    replica = start_redis(work / "replica", args=["--replicaof", "127.0.0.1", str(src.port)])
    consumers = [Consumer("native replica", replica.proc.pid, replica)]
    try:
        src.client().set("catchup:last", "-1")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        consumers.append(_migrator("cachemigrate", [str(CLI)], src, work, env))
        if baseline is not None:
            py = [str(CLI.with_name("python")), "-c", "from cachemigrate.cli.app import main; main()"]
            consumers.append(_migrator("baseline", py, src, work,
                                       {**env, "PYTHONPATH": str(baseline.resolve() / "src")}))
        for c in consumers:
            wait_value(c.target, "catchup:last", b"-1", 120)
        for rnd in range(repeat):
            path = writes_file(writes, rnd)
            for c in consumers:
                os.kill(c.pid, signal.SIGSTOP)
            pipe_into(src, path)
            value = b"%d" % rnd
            line = []
            for c in consumers:
                prof = None
                if profile == "py-spy" and rnd == repeat - 1 and c.proc is not None:
                    out = BENCH_DIR / f"catchup-{writes}-{c.name}.folded"
                    spy = [str(CLI.with_name("py-spy")), "record", "--pid", str(c.pid), "--rate", "250",
                           "--nonblocking", "--format", "raw", "-o", str(out)]
                    prof = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)  # py-spy attaches to a stopped process too
                d = drain(c.pid, c.target, value, src.proc.pid)
                if prof is not None:
                    prof.send_signal(signal.SIGINT)
                    prof.wait(60)
                c.drains.append(d)
                line.append(f"{c.name} {writes / d.seconds:,.0f} writes/s ({d.seconds:.3f} s, "
                            f"cpu {_cpu(d.cpu)})")
            print(f"  round {rnd + 1}: " + "; ".join(line), flush=True)
        for c in consumers:
            if c.proc is not None and c.proc.poll() is not None:
                raise RuntimeError(f"{c.name} exited: "
                                   f"{(work / f'migrate-{c.name}.log').read_text()[-500:]}")
    finally:
        for c in consumers:
            if c.proc is not None and c.proc.poll() is None:
                os.kill(c.pid, signal.SIGCONT)
                c.proc.send_signal(signal.SIGINT)
                try:
                    c.proc.wait(30)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                    c.proc.wait()
            with_cont(c.target)
            c.target.stop()
        src.stop()
    return consumers


def with_cont(server: RedisServer) -> None:
    if server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}s" for k, v in cpu.items())


def report(writes: int, consumers: list[Consumer]) -> None:
    native = statistics.median(d.seconds for d in consumers[0].drains)
    for c in consumers:
        med = statistics.median(d.seconds for d in c.drains)
        runs = ", ".join(f"{d.seconds:.3f}" for d in c.drains)
        cpu = statistics.median(sum(v for k, v in d.cpu.items() if k != "source") for d in c.drains)
        ratio = "   ref" if c is consumers[0] else f"{native / med:5.2f}x"
        print(f"  {c.name:<16} {writes / med:11,.0f} writes/s {ratio}  (median of {len(c.drains)}: "
              f"{med:.3f} s; runs {runs}; CPU of consumer + its target, median {cpu:.2f} s)")


def bench_catchup(
    work: Path, writes: int = 1_000_000, repeat: int = 3, profile: str | None = None,
    baseline: Path | None = None,
) -> None:
    work.mkdir(parents=True, exist_ok=True)
    report(writes, run(work.resolve(), writes, repeat, profile, baseline))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", choices=["py-spy", "none"], default="none")
    ap.add_argument("--baseline", type=Path, help="another cachemigrate source tree (e.g. `git archive` "
                    "of main) measured beside this one, in the same rounds")
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        print(f"== REF catch-up: a backlog of {a.writes:,} SETs (64-byte values) ==", flush=True)
        bench_catchup(Path(tmp), a.writes, a.repeat, None if a.profile == "none" else a.profile, a.baseline)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
