"""The references every cachemigrate figure is divided by (../shared/bench/README.md).

REF ingest: `redis-cli --pipe` of DUMP/RESTORE commands into an empty target.
REF load:   redis-server loading the dump.rdb at start-up.
REF repl:   an empty redis-server replicating the source (diskless) until DBSIZE matches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.servers import RedisServer, start_redis

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench-out"
GEN = Path(__file__).resolve().parents[2] / "shared" / "bench" / "gen_dataset.py"


@dataclass
class Timing:
    name: str
    seconds: float
    cpu: dict[str, float]  # process name -> CPU seconds used during the measurement
    peak_rss_mb: float | None = None
    note: str = ""


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.NoSuchProcess:
        return 0.0


def dataset(scale: int, bigkeys: bool, bigkey_elems: int) -> Path:
    """The reference command stream, generated once per parameter set and kept in bench-out/."""
    BENCH_DIR.mkdir(exist_ok=True)
    name = f"load-{scale}{'-big' + str(bigkey_elems) if bigkeys else ''}.resp"
    path = BENCH_DIR / name
    if not path.exists():
        args = [sys.executable, str(GEN), "--scale", str(scale), "-o", str(path) + ".tmp"]
        if bigkeys:
            args += ["--bigkeys", "--bigkey-elems", str(bigkey_elems)]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        os.replace(str(path) + ".tmp", path)
    return path


def pipe_into(server: RedisServer, resp_file: Path) -> None:
    with resp_file.open("rb") as fh:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=fh,
                             capture_output=True, check=True)
    if b"errors: 0" not in out.stdout:
        raise RuntimeError(f"redis-cli --pipe reported errors: {out.stdout[-300:]!r}")


def source_server(work: Path, resp_file: Path) -> RedisServer:
    src = start_redis(work / "source", args=["--repl-diskless-sync", "yes",
                                              "--repl-diskless-sync-delay", "0"])
    pipe_into(src, resp_file)
    return src


def restore_file(src: RedisServer, out: Path) -> Path:
    """Every key of the source as `RESTORE key ttl payload REPLACE` (relative TTL, as DUMP gives)."""
    c = src.client()
    with out.open("wb", buffering=8 << 20) as fh:
        for db in _dbs(c):
            cdb = src.client(db=db)
            fh.write(b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%d\r\n" % (len(str(db)), db))
            keys: list[bytes] = []
            for k in cdb.scan_iter(count=1000):
                keys.append(k)
                if len(keys) >= 1000:
                    _dump_batch(cdb, keys, fh)
                    keys = []
            if keys:
                _dump_batch(cdb, keys, fh)
    return out


def _dbs(c: redis.Redis) -> list[int]:
    return sorted(int(k[2:]) for k in c.info("keyspace"))


def _dump_batch(c: redis.Redis, keys: list[bytes], fh: object) -> None:
    p = c.pipeline(transaction=False)
    for k in keys:
        p.dump(k)
        p.pttl(k)
    r = p.execute()
    for i, k in enumerate(keys):
        payload, ttl = r[2 * i], r[2 * i + 1]
        ttlb = b"%d" % max(ttl, 0)
        fh.write(b"*5\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$7\r\nREPLACE\r\n"  # type: ignore[attr-defined]
                 % (len(k), k, len(ttlb), ttlb, len(payload), payload))


def ref_ingest(work: Path, restore: Path, tag: str) -> Timing:
    tgt = start_redis(work / f"ingest-{tag}")
    try:
        before = cpu_seconds(tgt.proc.pid)
        with restore.open("rb") as fh:
            t0 = time.perf_counter()
            proc = subprocess.Popen(["redis-cli", "-p", str(tgt.port), "--pipe"], stdin=fh,
                                    stdout=subprocess.PIPE)
            _, _status, usage = os.wait4(proc.pid, 0)
            secs = time.perf_counter() - t0
        out = proc.stdout.read() if proc.stdout else b""
        if b"errors: 0" not in out:
            raise RuntimeError(f"REF ingest had errors: {out[-200:]!r}")
        return Timing("REF ingest", secs, {"redis-cli": usage.ru_utime + usage.ru_stime,
                                           "target": cpu_seconds(tgt.proc.pid) - before})
    finally:
        tgt.stop()
        shutil.rmtree(tgt.directory, ignore_errors=True)


def ref_load(work: Path, rdb: Path, expected_keys: int) -> Timing:
    d = work / "load"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(rdb, d / "dump.rdb")
    t0 = time.perf_counter()
    # Returns once PING answers: the dataset is loaded (3M keys take well over the default 20 s).
    srv = start_redis(d, start_timeout=600)
    secs = time.perf_counter() - t0
    try:
        n = srv.client().dbsize()
        if n != expected_keys:
            raise RuntimeError(f"REF load: {n} keys, expected {expected_keys}")
        return Timing("REF load", secs, {"redis-server": cpu_seconds(srv.proc.pid)})
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def ref_repl(work: Path, src: RedisServer, expected_keys: int, tag: str) -> Timing:
    replica = start_redis(work / f"replica-{tag}")
    try:
        c = replica.client()
        src_before = cpu_seconds(src.proc.pid)
        rep_before = cpu_seconds(replica.proc.pid)
        t0 = time.perf_counter()
        c.replicaof("127.0.0.1", src.port)
        while True:
            info = c.info("replication")
            if info.get("master_link_status") == "up" and c.dbsize() == expected_keys:
                break
            time.sleep(0.005)
        secs = time.perf_counter() - t0
        cpu = {"source": cpu_seconds(src.proc.pid) - src_before,
               "replica": cpu_seconds(replica.proc.pid) - rep_before}
        c.replicaof("no", "one")
        return Timing("REF repl", secs, cpu)
    finally:
        replica.stop()
        shutil.rmtree(replica.directory, ignore_errors=True)
