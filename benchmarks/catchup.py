"""REF catch-up: how fast a lagging consumer drains a replication backlog (../shared/bench/README.md).

    python -m benchmarks.catchup [--writes 200000] [--repeat 3] [--profile py-spy|none]

One source (``repl-backlog-size 2gb``, ``client-output-buffer-limit replica 0 0 0``), a native
replica of it (``redis-server --replicaof``) and ``cachemigrate migrate --incremental`` (the CLI)
into an empty target, both in sync. Each round freezes both with SIGSTOP, pipes ``--writes`` SETs
of 64-byte values (a quarter of them overwrites, the last one a sentinel) into the source, then
releases the native replica and times until the sentinel is visible on it; then the same for
cachemigrate. The two drains run one after the other, so that neither competes with the other for
the CPU; the source, already idle, only sends. Figures: writes/s of each and the ratio (ours /
native); CPU seconds of each process during its drain. With ``--profile py-spy`` the drain of
cachemigrate in the last round is recorded (``py-spy record``: collapsed stacks in bench-out/; py-spy is
pip-installed into the venv by hand).
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
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cli_run import CLI
from benchmarks.refs import BENCH_DIR, RedisServer, cpu_seconds, start_redis

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


def pipe(server: RedisServer, path: Path) -> None:
    with path.open("rb") as fh:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=fh,
                             capture_output=True, check=True)
    if b"errors: 0" not in out.stdout:
        raise RuntimeError(f"redis-cli --pipe reported errors: {out.stdout[-300:]!r}")


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


def run(work: Path, writes: int, repeat: int, profile: str | None = None) -> tuple[list[Drain], list[Drain]]:
    src = start_redis(work / "source", args=SOURCE_ARGS)
    replica = start_redis(work / "replica", args=["--replicaof", "127.0.0.1", str(src.port)])
    tgt = start_redis(work / "target")
    mig: subprocess.Popen[bytes] | None = None
    natives: list[Drain] = []
    ours: list[Drain] = []
    try:
        src.client().set("catchup:last", "-1")
        wait_value(replica, "catchup:last", b"-1", 60)
        mig = subprocess.Popen([str(CLI), "migrate", src.url, tgt.url, "--incremental", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=(work / "migrate.log").open("wb"))
        wait_value(tgt, "catchup:last", b"-1", 120)
        for rnd in range(repeat):
            path = writes_file(writes, rnd)
            os.kill(replica.proc.pid, signal.SIGSTOP)
            os.kill(mig.pid, signal.SIGSTOP)
            pipe(src, path)
            value = b"%d" % rnd
            natives.append(drain(replica.proc.pid, replica, value, src.proc.pid))
            prof = None
            if profile == "py-spy" and rnd == repeat - 1:
                out = BENCH_DIR / f"catchup-{writes}.folded"
                prof = subprocess.Popen([str(CLI.with_name("py-spy")), "record", "--pid", str(mig.pid),
                                         "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)  # py-spy attaches to a stopped process too
            d = drain(mig.pid, tgt, value, src.proc.pid)
            d.cpu["cachemigrate"] = d.cpu.pop("consumer")
            ours.append(d)
            if prof is not None:
                prof.send_signal(signal.SIGINT)
                prof.wait(60)
            natives[-1].cpu["replica"] = natives[-1].cpu.pop("consumer")
            print(f"  round {rnd + 1}: native {writes / natives[-1].seconds:,.0f} writes/s "
                  f"({natives[-1].seconds:.3f} s, cpu {_cpu(natives[-1].cpu)}), cachemigrate "
                  f"{writes / d.seconds:,.0f} writes/s ({d.seconds:.3f} s, cpu {_cpu(d.cpu)})", flush=True)
        if mig.poll() is not None:
            raise RuntimeError(f"cachemigrate exited: {(work / 'migrate.log').read_text()[-500:]}")
    finally:
        if mig is not None and mig.poll() is None:
            os.kill(mig.pid, signal.SIGCONT)
            mig.send_signal(signal.SIGINT)
            try:
                mig.wait(30)
            except subprocess.TimeoutExpired:
                mig.kill()
                mig.wait()
        with_cont(replica)
        for s in (replica, tgt, src):
            s.stop()
    return natives, ours


def with_cont(server: RedisServer) -> None:
    if server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}s" for k, v in cpu.items())


def report(writes: int, natives: list[Drain], ours: list[Drain]) -> None:
    n = statistics.median(d.seconds for d in natives)
    o = statistics.median(d.seconds for d in ours)
    print(f"  REF catch-up (native replica)            {writes / n:11,.0f} writes/s  "
          f"(median of {len(natives)}: {n:.3f} s; runs {', '.join(f'{d.seconds:.3f}' for d in natives)})")
    print(f"  cachemigrate migrate --incremental       {writes / o:11,.0f} writes/s  "
          f"(median of {len(ours)}: {o:.3f} s; runs {', '.join(f'{d.seconds:.3f}' for d in ours)})")
    print(f"  {'':<40} {n / o:11.2f}x  <- vs REF catch-up")


def bench_catchup(work: Path, writes: int = 1_000_000, repeat: int = 3, profile: str | None = None) -> None:
    work.mkdir(parents=True, exist_ok=True)
    natives, ours = run(work.resolve(), writes, repeat, profile)
    report(writes, natives, ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", choices=["py-spy", "none"], default="none")
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        print(f"== REF catch-up: a backlog of {a.writes:,} SETs (64-byte values) ==", flush=True)
        bench_catchup(Path(tmp), a.writes, a.repeat, None if a.profile == "none" else a.profile)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
