"""A concurrent writer for online-migration tests, and helpers to run and watch a pipeline."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from cachemigrate.engine.checkpoint import Checkpoint, CheckpointStore, MemoryCheckpointStore
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import RecordingSink, StatusSnapshot
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import Comparison, Side, compare_servers
from support.poll import until

# Sources start their snapshot at once (Redis 7 waits 5 s for more replicas by default).
FAST = ["--repl-diskless-sync-delay", "0"]
LUA = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2]); return 1"


def seed(client: redis.Redis, n: int = 300, dbs: tuple[int, ...] = (0, 1)) -> None:
    """Every type, with and without TTLs, in each of ``dbs``."""
    for db in dbs:
        pool = client.connection_pool  # the same server (a TCP port or a unix socket), in db
        r = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, **{**pool.connection_kwargs, "db": db}))
        p = r.pipeline(transaction=False)
        for i in range(n):
            p.set(f"str:{i}", f"v{i}" * (i % 7 + 1))
            p.rpush(f"list:{i % 30}", *range(i % 5 + 1))
            p.sadd(f"set:{i % 30}", i)
            p.zadd(f"zset:{i % 30}", {f"m{i}": i * 1.5})
            p.hset(f"hash:{i % 30}", f"f{i}", i)
            p.xadd(f"stream:{i % 5}", {"f": i})
            if i % 10 == 0:
                p.set(f"ttl:{i}", "x", px=300_000 + i)
        p.set("short", "gone soon", px=1500)
        p.execute()
        r.xgroup_create("stream:0", "g1", id="0")
        r.xreadgroup("g1", "c1", {"stream:0": ">"}, count=3)
        r.close()


class Workload(threading.Thread):
    """Random writes of every kind until stopped (one thread, its own connections)."""

    def __init__(
        self, port: int, password: str | None = None, seed_: int = 1, pause: float = 0.0,
        dbs: tuple[int, ...] = (0, 1), unix: str | None = None,
    ) -> None:
        super().__init__(daemon=True)
        # Multi-key commands use one hash tag so that a cluster target can take them.
        self.clients = [redis.Redis(port=port, password=password, db=db, unix_socket_path=unix)
                        for db in dbs]
        self.rng = random.Random(seed_)
        self.stop_event = threading.Event()
        self.pause = pause
        self.ops = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.step()
                self.ops += 1
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def step(self) -> None:
        rng = self.rng
        r = self.clients[rng.random() < 0.2 and len(self.clients) > 1]
        i = rng.randrange(400)
        op = rng.randrange(16)
        if op == 0:
            r.set(f"str:{i}", rng.randbytes(rng.randrange(1, 50)))
        elif op == 1:
            r.set(f"ttl:{i}", "t", ex=rng.choice([200, 400]))
        elif op == 2:
            r.delete(f"str:{i}")
            r.delete(f"list:{i % 40}")
        elif op == 3:
            r.rpush(f"list:{i % 40}", i)
            r.lpop(f"list:{(i + 1) % 40}")
        elif op == 4:
            r.sadd(f"set:{i % 40}", i)
            r.srem(f"set:{(i + 3) % 40}", i)
        elif op == 5:
            r.zadd(f"zset:{i % 40}", {f"m{i}": rng.random()})
            r.zincrby(f"zset:{i % 40}", 2.5, f"m{i}")
        elif op == 6:
            r.hset(f"hash:{i % 40}", f"f{i}", i)
            r.hdel(f"hash:{(i + 1) % 40}", f"f{i}")
        elif op == 7:
            r.xadd(f"stream:{i % 5}", {"f": i}, maxlen=1000)
        elif op == 8:
            p = r.pipeline(transaction=True)
            p.incr(f"ctr:{{{i % 10}}}")
            p.set(f"str:{{{i % 10}}}:m", "multi")
            p.sadd(f"set:{{{i % 10}}}:m", i)
            p.execute()
        elif op == 9:
            r.eval(LUA, 2, f"lua:{{{i % 10}}}", f"ctr:{{{i % 10}}}", i)
        elif op == 10:
            r.expire(f"str:{i}", 300)
        elif op == 11:
            r.persist(f"ttl:{i}")
        elif op == 12:
            r.set(f"short:{i}", "s", px=rng.randrange(50, 400))
        elif op == 13:
            r.incrbyfloat(f"float:{i % 10}", 0.5)
        elif op == 14:
            r.append(f"str:{i}", "+")
        elif rng.random() < 0.02 and len(self.clients) > 1:
            self.clients[1].flushdb()

    async def more(self, n: int, timeout: float = 60) -> int:
        """Until the writer has done ``n`` more operations than now (not a time: a busy machine
        writes slower); returns its count."""
        goal = self.ops + n

        def done() -> bool:
            if self.error is not None or not self.is_alive():
                raise AssertionError(f"the writer stopped after {self.ops} ops: {self.error!r}")
            return self.ops >= goal

        await until(done, timeout, what=f"{n} more writes")
        return self.ops

    def stop(self) -> int:
        self.stop_event.set()
        self.join(10)
        for c in self.clients:
            c.close()
        if self.error is not None:
            raise self.error
        return self.ops


class Counters(threading.Thread):
    """INCRs of ``keys`` counters (``count:<i>``, db 0) until stopped, each counted once its reply
    came: after the migration the target's counters must equal ``counts`` exactly (a write lost
    or applied twice shows). ``client`` is the source (a unix-socket client for a NetLab host)."""

    def __init__(self, client: redis.Redis, keys: int = 16, pause: float = 0.0005) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.counts = dict.fromkeys((f"count:{i}" for i in range(keys)), 0)
        self.pause = pause
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def run(self) -> None:
        names = list(self.counts)
        try:
            i = 0
            while not self.stop_event.is_set():
                key = names[i % len(names)]
                self.client.incr(key)
                self.counts[key] += 1
                i += 1
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> int:
        self.stop_event.set()
        self.join(10)
        if self.error is not None:
            raise self.error
        return self.total

    def check(self, target: redis.Redis) -> None:
        """The target holds every counter at exactly the writer's count."""
        got = {k: int(target.get(k) or 0) for k in self.counts}
        assert got == self.counts, {k: (got[k], n) for k, n in self.counts.items() if got[k] != n}


class Online:
    """A run_pipeline task over a SYNC source, with its sink, store and stop event."""

    def __init__(
        self,
        source_url: str,
        target_url: str,
        *,
        store: CheckpointStore | None = None,
        kind: SourceKind = SourceKind.SYNC,
        **options: Any,
    ) -> None:
        opts = PipelineOptions(**{"incremental": True, **options})
        self.spec = PipelineSpec(
            SourceSpec(kind, endpoint=Endpoint.from_url(source_url)),
            Endpoint.from_url(target_url),
            opts,
        )
        self.sink = RecordingSink()
        self.store: CheckpointStore = store or MemoryCheckpointStore()
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[StatusSnapshot] = asyncio.create_task(
            run_pipeline(self.spec, events=self.sink, checkpoints=self.store, stop=self.stop_event)
        )

    @property
    def last(self) -> StatusSnapshot | None:
        return self.sink.last

    async def wait_for(self, pred: Callable[[StatusSnapshot], bool], timeout: float = 30) -> StatusSnapshot:
        def holds() -> StatusSnapshot | None:
            if self.task.done():
                self.task.result()
                raise AssertionError("pipeline ended early")
            s = self.sink.last
            return s if s is not None and pred(s) else None

        try:
            return await until(holds, timeout, interval=0.1)
        except AssertionError as exc:
            if self.task.done():
                raise
            last, logs = self.sink.last, self.sink.logs[-5:]
            raise AssertionError(f"timed out; last status {last}; logs {logs}") from exc

    async def checkpoint_at(self, offset: int, timeout: float = 30) -> Checkpoint:
        """Until the store holds an incremental checkpoint at ``offset`` or later (a periodic save)."""

        async def saved() -> Checkpoint | None:
            cp = await self.store.load()
            return cp if cp is not None and cp.phase == "incremental" and cp.offset >= offset else None

        return await until(saved, timeout, interval=0.1, what=f"a checkpoint at offset {offset}")

    async def wait_applied(self, source: redis.Redis, timeout: float = 30) -> StatusSnapshot:
        """Until the target has applied everything the source has written so far."""
        offset = int(source.info("replication")["master_repl_offset"])
        return await self.wait_for(
            lambda s: s.applied_offset is not None and s.applied_offset >= offset, timeout
        )

    async def finish(self, timeout: float = 20) -> StatusSnapshot:
        self.stop_event.set()
        return await asyncio.wait_for(self.task, timeout)


async def converged(
    source: Side, target: Side, *, timeout: float = 60, tolerance_ms: int = 1000
) -> Comparison:
    """Until the two sides compare equal (the pipeline runs meanwhile: the reads go in a thread)."""
    last = Comparison()

    async def equal() -> bool:
        nonlocal last
        last = await asyncio.to_thread(compare_servers, source, target, ttl_tolerance_ms=tolerance_ms)
        return last.ok

    try:
        await until(equal, timeout, interval=0.2, what="the target to converge")
    except AssertionError as exc:
        raise AssertionError(f"did not converge: {last.summary()}") from exc
    return last


def check_equal(source: Side, target: Side, *, tolerance_ms: int = 1000) -> Comparison:
    result = compare_servers(source, target, ttl_tolerance_ms=tolerance_ms)
    assert result.ok, result.summary()
    assert result.compared > 0
    return result
