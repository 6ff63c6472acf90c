"""Network faults on the source's link during an incremental migration under writes.

The source, the target and the migrator are hosts in network namespaces the test creates
(support.netns: veths through a router namespace); the migrator is `cachemigrate migrate` run in
its own namespace. Every packet between the source and anyone goes through the router's
user-space impairer (support/impair.py), which delays, drops or cuts them. The writers and the
comparison use the servers' unix sockets: they do not cross the impaired link.

Each test: a full sync, then writes (a mixed workload and INCR counters), then one fault while
the writes go on, then the fault lifted; the migration must end identical (support.compare), the
target's counters equal to the writer's own counts (nothing lost or applied twice), and the lag
recovers (the target reaches every write made before the fault was lifted). What was measured
is printed on a ``FAULT`` line (pytest -s) for the closing note. The CLI connects without a
network policy (protocol/netpolicy.py applies to the service), so 10.213.0.0/16 needs no
CACHEMIGRATE_ALLOWED_NETWORKS here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from online_workload import FAST, Counters, Workload, seed

from cachemigrate.engine.exactly_once import Marker, marker_key
from support.compare import compare_servers
from support.netns import NetLab, require_netns
from support.poll import wait_until
from support.servers import RedisServer

MAIN = "from cachemigrate.cli.app import main; main()"
# The source drops a replica it has not heard from for 5 s: a partition longer than that makes it
# close the link, and the migrator must come back with PSYNC (+CONTINUE) from its backlog.
SOURCE_ARGS = [*FAST, "--repl-timeout", "5", "--repl-backlog-size", "16mb"]
# name: (impairer command, held while the writers make this many writes; None: until the source
# has dropped the migrator's link)
FAULTS: dict[str, tuple[str, int | None]] = {
    "delay": ("delay 100 20", 6000),  # 100 ms ± 20 ms each way: RTT about 200 ms
    "loss": ("loss 5", 6000),  # 5 % of the packets each way
    "blip": ("partition", 1500),  # every packet, briefly: TCP retransmits (the link may survive)
    "partition": ("partition", None),  # every packet, until the source drops the link (5 s)
}


@pytest.fixture
def lab() -> Iterator[NetLab]:
    require_netns()
    lab = NetLab.create(["src", "mig", "dst"])  # the first host's link is the impaired one
    try:
        yield lab
    finally:
        lab.close()


def _offset(c: redis.Redis) -> int:
    return int(c.info("replication")["master_repl_offset"])


def _applied(target: redis.Redis, key: bytes) -> int:
    """How far the target has applied the source's stream: the exactly-once marker's offset."""
    raw = target.get(key)
    marker = Marker.decode(raw) if isinstance(raw, bytes) else None
    return marker.offset if marker is not None else -1


@pytest.mark.parametrize("fault", list(FAULTS))
def test_incremental_migration_survives_network_fault(
    lab: NetLab, redis_factory: Callable[..., RedisServer], tmp_path: Path, fault: str
) -> None:
    source = redis_factory("s", host=lab.addr("src"), prefix=lab.prefix("src"), args=SOURCE_ARGS)
    target = redis_factory("d", host=lab.addr("dst"), prefix=lab.prefix("dst"))
    src, dst = source.client(), target.client()
    seed(src, n=200)
    key = marker_key(f"{lab.addr('src')}:{source.port}")
    writer = Workload(0, unix=str(source.unix), pause=0.001, dbs=(0,))
    counters = Counters(source.client())
    log = (tmp_path / "migrate.log").open("w+")
    proc = subprocess.Popen(
        [*lab.prefix("mig"), sys.executable, "-c", MAIN, "migrate", source.url, target.url,
         "--incremental", "--checkpoint", str(tmp_path / "cp.json")],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )

    def alive() -> None:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"the migrator exited ({proc.returncode}): {log.read()[-2000:]}")

    def reached(offset: int) -> bool:
        alive()
        return _applied(dst, key) >= offset

    try:
        writer.start()
        counters.start()
        wait_until(lambda: reached(0), 60, what="the incremental phase (a marker in the target)")
        wait_until(lambda: reached(_offset(src)), 60, what="the migrator to catch up")

        # The fault, held while the writes go on.
        start_offset, start_ops, max_lag = _offset(src), writer.ops + counters.total, 0
        before = lab.counts()
        began = time.monotonic()
        command, writes = FAULTS[fault]
        lab.impair(command)

        def held() -> bool:
            nonlocal max_lag
            alive()
            max_lag = max(max_lag, _offset(src) - _applied(dst, key))
            if writes is None:  # until the source has given up on the migrator
                return int(src.info("replication")["connected_slaves"]) == 0
            if writer.ops + counters.total - start_ops < writes:
                return False
            # Through a slow or lossy link the migration goes on: writes made during it arrive.
            return command == "partition" or _applied(dst, key) > start_offset

        wait_until(held, 120, interval=0.2, what=f"the {fault} to have its effect")
        held_for = time.monotonic() - began
        during = _offset(src)
        lab.impair("clear")
        cleared = time.monotonic()
        wait_until(lambda: reached(during), 120, interval=0.1, what="the lag to recover")
        recovered = time.monotonic() - cleared
        forwarded, dropped = (a - b for a, b in zip(lab.counts(), before, strict=True))

        wait_until(lambda: writer.ops + counters.total - start_ops >= (writes or 0) + 2000, 60,
                   what="more writes")
        ops = writer.stop() + counters.stop()
        wait_until(lambda: reached(_offset(src)), 60, what="the final catch-up")
        report = compare_servers([src], [dst])
        assert report.ok and report.compared > 200, report.summary()
        counters.check(dst)  # nothing lost, nothing applied twice
        stats = src.info("stats")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        log.seek(0)
        output = log.read()
        assert proc.returncode == 0, output[-2000:]
    finally:
        writer.stop_event.set()
        counters.stop_event.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    assert int(stats["sync_full"]) == 1, stats  # the first snapshot only: never a new full sync
    assert "FULLRESYNC" not in output
    warnings = [line for line in output.splitlines() if line.startswith(("warning:", "error:"))]
    if writes is None:
        assert int(stats["sync_partial_ok"]) >= 1 and "+CONTINUE" in output, output[-2000:]
    print("FAULT", json.dumps({
        "name": fault, "fault": command, "held_s": round(held_for, 1), "writes": ops,
        "packets_forwarded": forwarded, "packets_dropped": dropped, "max_lag_bytes": max_lag,
        "recover_s": round(recovered, 2), "keys_compared": report.compared,
        "mismatches": len(report.mismatches),
        "counter_incrs": counters.total, "sync_full": int(stats["sync_full"]),
        "sync_partial_ok": int(stats["sync_partial_ok"]), "warnings": warnings[-3:],
    }))
