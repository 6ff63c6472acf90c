"""`cachemigrate migrate --incremental` killed with SIGKILL mid-stream and started again from the
same checkpoint file: no lost and no doubled writes, even for non-idempotent commands.

The checkpoint file lags what the target applied by up to a second; the offset marker the
transactions keep in the target (engine/exactly_once.py) is what makes the restart exact.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis
from online_workload import FAST, seed

from support.compare import Comparison, compare_servers
from support.poll import wait_until
from support.servers import RedisServer

CLI = str(Path(sys.executable).with_name("cachemigrate"))
KILLS = 3
LUA = "redis.call('INCR', KEYS[1]); redis.call('RPUSH', KEYS[2], ARGV[1]); return 1"


class Counting(threading.Thread):
    """Writes heavy in non-idempotent commands; counts the increments it made per key."""

    def __init__(self, port: int, seed_: int) -> None:
        super().__init__(daemon=True)
        self.dbs = [redis.Redis(port=port, db=0), redis.Redis(port=port, db=1)]
        self.rng = random.Random(seed_)
        self.incrs: Counter[tuple[int, str]] = Counter()  # (db, key) -> INCRs, in MULTI/EVAL too
        self.hincrs: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self.ops = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.step()
                self.ops += 1
                time.sleep(0.0002)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def step(self) -> None:
        rng = self.rng
        db = 1 if rng.random() < 0.15 else 0
        r = self.dbs[db]
        i = rng.randrange(20)
        op = rng.randrange(11)
        if op == 0:
            r.incr(f"ctr:{i}")
            self.incrs[(db, f"ctr:{i}")] += 1
        elif op == 1:
            r.rpush(f"list:{i}", self.ops)
        elif op == 2:
            r.lpop(f"list:{(i + 1) % 20}")
        elif op == 3:
            r.append(f"str:{i}", "+")
        elif op == 4:
            r.hincrby(f"hash:{i}", "f", 1)
            self.hincrs[f"{db}:hash:{i}"] += 1
        elif op == 5:
            r.zincrby(f"zset:{i}", 1.5, f"m{i % 3}")
        elif op == 6:
            r.set(f"s:{i}", self.ops)
            r.delete(f"s:{(i + 7) % 20}")
        elif op == 7:
            r.expire(f"str:{i}", 300)
        elif op == 8:
            p = r.pipeline(transaction=True)
            p.incr(f"ctr:{i}")
            p.rpush(f"list:{i}", "m")
            p.append(f"str:{i}", "m")
            p.execute()
            self.incrs[(db, f"ctr:{i}")] += 1
        elif op == 9:
            r.eval(LUA, 2, f"ctr:{i}", f"list:{i}", "e")
            self.incrs[(db, f"ctr:{i}")] += 1
        else:
            r.linsert(f"list:{i}", "BEFORE", "m", "ins")

    def stop(self) -> int:
        self.stop_event.set()
        self.join(10)
        for c in self.dbs:
            c.close()
        if self.error is not None:
            raise self.error
        return self.ops


def _start(source: RedisServer, target: RedisServer, cp: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen([CLI, "migrate", source.url, target.url, "--incremental",
                                 "--checkpoint", str(cp), "-q"],
                                stdout=subprocess.DEVNULL, stderr=err)


def _wait(pred: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    wait_until(pred, timeout, what=what)


def _stats(source: RedisServer) -> tuple[int, int]:
    info = source.client().info("stats")
    return int(info["sync_full"]), int(info["sync_partial_ok"])


def _incremental_checkpoint(cp: Path) -> bool:
    try:
        return bool(json.loads(cp.read_text())["phase"] == "incremental")
    except (OSError, ValueError, KeyError):
        return False


def test_sigkill_restarts_apply_every_write_exactly_once(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    source = redis_factory("src", args=FAST)
    target = redis_factory("dst")
    seed(source.client(), n=100)
    cp, log = tmp_path / "cp.json", tmp_path / "migrate.log"
    rng = random.Random()
    writer = Counting(source.port, seed_=7)
    writer.start()
    proc = _start(source, target, cp, log)
    kill_offsets: list[int] = []
    try:
        _wait(lambda: _incremental_checkpoint(cp), what="the incremental phase")
        for n in range(1, KILLS + 1):
            time.sleep(rng.uniform(0.3, 1.5))  # writes go on; the checkpoint is up to 1 s old
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kill_offsets.append(json.loads(cp.read_text())["offset"])
            time.sleep(rng.uniform(0.0, 0.5))
            proc = _start(source, target, cp, log)
            _wait(lambda n=n: _stats(source)[1] >= n, what=f"resume {n}")  # type: ignore[misc]
        time.sleep(1)
        ops = writer.stop()
        result = Comparison()

        def equal() -> bool:
            nonlocal result
            result = compare_servers([source.client()], [target.client()])
            return result.ok

        _wait(equal, timeout=30, what="the target to catch up")
    finally:
        writer.stop_event.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    full, partial = _stats(source)
    assert (full, partial) == (1, KILLS), "each restart continues the stream (+CONTINUE)"
    # The counters prove that nothing was applied twice (the key comparison says it too).
    for db in (0, 1):
        tgt = target.client(db=db)
        for (d, key), count in writer.incrs.items():
            if d == db:
                assert int(tgt.get(key) or 0) == count, (db, key)
    for name, count in writer.hincrs.items():
        db, key = name.split(":", 1)
        assert int(target.client(db=int(db)).hget(key, "f") or 0) == count, name
    assert result.ok and result.compared > 100
    marker = [k for k in target.client().scan_iter(match="__cachemigrate:offset:*")]
    assert marker == [f"__cachemigrate:offset:{{127.0.0.1:{source.port}}}".encode()]
    print(f"\n{KILLS} SIGKILLs (checkpoints at {kill_offsets}), {ops} source writes, "
          f"{result.compared} keys compared, {len(result.mismatches)} mismatches, "
          f"{partial} +CONTINUE, {sum(writer.incrs.values())} INCRs")
