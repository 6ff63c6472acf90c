"""A client that writes through a front at a fixed rate, in a process of its own, and what it saw.

Each step is two writes: ``INCR <prefix>:counter`` and ``RPUSH <prefix>:seq <n>`` (n = 0, 1, 2...).
Each write is retried on a connection error (or a timeout, or an error reply) until it is
acknowledged, the way a careful application does through a cutover; the writer counts the errors
and measures the longest time between two acknowledged writes. ``verify`` then reads the server
the front ends on: every acknowledged sequence number must be there exactly once and the counter
must equal the acknowledged INCRs (more: a write applied twice; less: one lost).

Its own process: the migration and the cutover run in the test's process, and a thread would
share their interpreter lock, which would show up as gaps that are not the cutover's.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from support.poll import until, wait_until

LONG_GAP = 0.005  # seconds: gaps above this are kept one by one (the first 1000)


@dataclass
class WriterResult:
    steps: int = 0  # acknowledged INCR + RPUSH pairs
    seconds: float = 0.0
    max_gap: float = 0.0  # longest time between two acknowledged writes (s)
    max_gap_at: float = 0.0  # when it ended, seconds after the start
    errors: list[str] = field(default_factory=list)  # what the client saw, in order (first 200)
    error_count: int = 0
    started: float = 0.0  # time.monotonic() of the start (the same clock in every process)
    long_gaps: list[tuple[float, float]] = field(default_factory=list)  # (end, gap) over LONG_GAP

    @property
    def writes(self) -> int:
        return 2 * self.steps

    @property
    def rate(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


@dataclass
class Verdict:
    acknowledged: int
    lost: list[int]
    doubled: list[int]
    unexpected: list[int]  # numbers in the list no write was acknowledged for
    counter: int

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unexpected) and self.counter == self.acknowledged


def _run(port: int, prefix: str, rate: float, stop: Any, done: Any, out: Pipe) -> None:
    client = redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5,
                         retry=Retry(NoBackoff(), 0), retry_on_error=[])
    result = WriterResult()
    counter, seq = f"{prefix}:counter", f"{prefix}:seq"
    start = last_ack = result.started = time.monotonic()

    def write(*args: object) -> None:
        nonlocal last_ack
        while True:
            try:
                client.execute_command(*args)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                result.error_count += 1
                if len(result.errors) < 200:
                    result.errors.append(f"{time.monotonic() - start:.3f} s {type(exc).__name__}: {exc}")
                continue
            now = time.monotonic()
            gap = now - last_ack
            if gap > result.max_gap:
                result.max_gap, result.max_gap_at = gap, now - start
            if gap > LONG_GAP and len(result.long_gaps) < 1000:
                result.long_gaps.append((now, gap))
            last_ack = now
            return

    n = 0
    while not stop.is_set():
        due = start + n / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the client's fixed rate, not a synchronisation
        write("INCR", counter)
        write("RPUSH", seq, n)
        n += 1
        result.steps = n
        done.value = n
    result.seconds = time.monotonic() - start
    client.close()
    out.send(result)
    out.close()


class FrontWriter:
    """``start()``, let it write, ``stop()`` -> WriterResult; ``steps`` counts as it goes."""

    def __init__(self, port: int, *, rate: float = 1500.0, prefix: str = "cutover") -> None:
        self.port = port
        self.rate = rate  # steps per second: twice as many writes
        self.prefix = prefix
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._done = ctx.Value("q", 0)
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_run, args=(port, prefix, rate, self._stop, self._done, send),
                                 daemon=True)
        self._send = send

    @property
    def steps(self) -> int:
        return int(self._done.value)

    def start(self) -> FrontWriter:
        self._proc.start()
        self._send.close()
        wait_until(lambda: self.steps > 0, what="the front writer's first write")
        return self

    async def more(self, n: int, timeout: float = 60) -> None:
        """Until ``n`` more steps are acknowledged (not a time: a busy machine writes slower)."""
        goal = self.steps + n

        def done() -> bool:
            if not self._proc.is_alive():
                raise AssertionError(f"the front writer died (exit code {self._proc.exitcode})")
            return self.steps >= goal

        await until(done, timeout, what=f"{n} more writes through the front")

    def stop(self) -> WriterResult:
        self._stop.set()
        if not self._recv.poll(60):
            self._proc.kill()
            raise AssertionError("the front writer did not report")
        result: WriterResult = self._recv.recv()
        self._proc.join(10)
        return result


def verify(client: redis.Redis, result: WriterResult, prefix: str = "cutover") -> Verdict:
    """What the server holds against what the writer was told was written."""
    raw = client.lrange(f"{prefix}:seq", 0, -1)
    counts = Counter(int(x) for x in raw)
    acked = result.steps
    lost = [n for n in range(acked) if counts[n] == 0]
    doubled = sorted(n for n, c in counts.items() if c > 1)
    unexpected = sorted(n for n in counts if not 0 <= n < acked)
    counter = int(client.get(f"{prefix}:counter") or 0)
    return Verdict(acked, lost, doubled, unexpected, counter)
