"""Sustained load: the highest source write rate at which ``migrate --incremental`` stays under 1 s of lag.

    python -m benchmarks.sustained [--rates 50000,100000,200000,300000,400000] [--step 5]

``cachemigrate migrate --incremental`` (the CLI) follows a source into an empty target (and, first,
for the yardstick, a native replica follows its own source the same way). A paced
writer then sends SETs of 64-byte values to the source at each rate in turn for ``--step``
seconds (pre-packed commands, one socket write per 5 ms tick, replies read in a thread), while a
probe writes a unique value to the source every 100 ms and times until the target holds it: the
end-to-end lag. A rate passes when its maximum probe lag stays under 1 s and the writer reached
the rate (the machine is shared: a writer that fell short says so instead). The figure: the
highest rate passed before the first one that failed.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.catchup import SOURCE_ARGS, wait_value
from benchmarks.cli_run import CLI
from benchmarks.refs import BENCH_DIR, RedisServer, start_redis

TICK = 0.005
LAG_LIMIT = 1.0


def _packed(n: int) -> bytes:
    value = b"v" * 64
    return b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$64\r\n%b\r\n" % (len(k), k, value)
                    for k in (b"load:%d" % (i % 200_000) for i in range(n)))


class PacedWriter(threading.Thread):
    """SETs at ``rate`` per second until stopped; ``sent`` counts them."""

    def __init__(self, port: int, rate: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.rate = rate
        self.per_tick = max(1, int(rate * TICK))
        self.batch = _packed(self.per_tick)
        self.sent = 0
        self.stop = threading.Event()
        self._drain = threading.Thread(target=self._discard, daemon=True)

    def _discard(self) -> None:
        while self.sock.recv(1 << 20):
            pass

    def run(self) -> None:
        self._drain.start()
        t = time.monotonic()
        while not self.stop.is_set():
            self.sock.sendall(self.batch)
            self.sent += self.per_tick
            t += TICK
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self.stop.set()
        self.join()
        self.sock.shutdown(socket.SHUT_WR)
        self._drain.join(10)
        self.sock.close()


def probe_lags(src: RedisServer, tgt: RedisServer, seconds: float) -> list[float]:
    s, t = src.client(), tgt.client()
    lags: list[float] = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        value = b"%d" % n
        s.set("sustained:probe", value)
        written = time.monotonic()
        while t.get("sustained:probe") != value:
            if time.monotonic() - written > 10:
                break
            time.sleep(0.001)
        lags.append(time.monotonic() - written)
        time.sleep(0.1)
    s.close()
    t.close()
    return lags


def bench_sustained(work: Path, rates: list[int], step: float) -> None:
    """The ladder for a native replica (the yardstick on this machine now), then for us."""
    native = _ladder(work / "native", rates, step, native=True)
    ours = _ladder(work / "ours", rates, step, native=False)
    print(f"  highest write rate with lag < 1 s: native replica {native:,} writes/s, "
          f"cachemigrate {ours:,} writes/s")


def _ladder(work: Path, rates: list[int], step: float, *, native: bool) -> int:
    print(f"  {'native replica' if native else 'cachemigrate migrate --incremental'}:", flush=True)
    src = start_redis(work / "source", args=SOURCE_ARGS)
    mig: subprocess.Popen[bytes] | None = None
    if native:
        tgt = start_redis(work / "replica", args=["--replicaof", "127.0.0.1", str(src.port)])
    else:
        tgt = start_redis(work / "target")
        mig = subprocess.Popen([str(CLI), "migrate", src.url, tgt.url, "--incremental", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = 0
    try:
        src.client().set("sustained:probe", "0")
        wait_value(tgt, "sustained:probe", b"0", 120)
        for rate in rates:
            writer = PacedWriter(src.port, rate)
            t0 = time.monotonic()
            writer.start()
            lags = probe_lags(src, tgt, step)
            achieved = writer.sent / (time.monotonic() - t0)
            writer.close()
            ok = max(lags) < LAG_LIMIT and achieved >= 0.9 * rate
            print(f"    {rate:>9,} writes/s asked, {achieved:>9,.0f} sent: probe lag max {max(lags):.3f} s, "
                  f"median {sorted(lags)[len(lags) // 2]:.3f} s -> "
                  f"{'under 1 s' if ok else 'writer fell short' if max(lags) < LAG_LIMIT else 'lags'}",
                  flush=True)
            if not ok:
                break
            best = rate
            wait_value(tgt, "sustained:probe", src.client().get("sustained:probe") or b"", 120)
    finally:
        if mig is not None:
            mig.terminate()
            mig.wait(30)
        tgt.stop()
        src.stop()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50000,100000,150000,200000,300000,400000")
    ap.add_argument("--step", type=float, default=5.0)
    a = ap.parse_args()
    BENCH_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        print("== sustained load: migrate --incremental under a paced SET writer ==", flush=True)
        bench_sustained(Path(tmp), [int(r) for r in a.rates.split(",")], a.step)


if __name__ == "__main__":
    main()
