"""Flow control: a byte budget for bytes in flight, a bandwidth token bucket, the backoff
between reconnect attempts, and the reader's read-ahead.

None polls: the budget wakes waiters from ``release()``, the bucket sleeps exactly as long as
the missing tokens take to accrue, a backoff wait ends early when its wake event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ByteBudget:
    """At most ``limit`` bytes in flight. ``acquire`` waits while over budget.

    A single acquisition larger than the whole budget is admitted when nothing else is in flight,
    so a huge command cannot deadlock the writer.
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("the byte budget must be positive")
        self.limit = limit
        self.in_flight = 0
        self._space = asyncio.Event()  # set by release(): waiters re-check, nobody polls
        self._error: BaseException | None = None

    def _fits(self, n: int) -> bool:
        return self.in_flight == 0 or self.in_flight + n <= self.limit

    async def acquire(self, n: int) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if self._fits(n):
                self.in_flight += n
                return
            self._space.clear()
            await self._space.wait()

    def release(self, n: int) -> None:
        """Give ``n`` bytes back (synchronous: called from reply processing)."""
        self.in_flight = max(0, self.in_flight - n)
        self._space.set()

    def fail(self, error: BaseException) -> None:
        """Wake every waiter with ``error`` (the connection under the budget is gone)."""
        self._error = error
        self._space.set()


class Backoff:
    """Capped exponential delays between reconnect attempts (``first``, doubled up to ``cap``).

    ``wait(wake)`` sleeps the current delay, or less when ``wake`` is set (a stop), and doubles
    the next one; ``reset()`` after a success. The one backoff of the engine: the replication
    link (readers/sync.py) and the target (pipeline.py) reconnect alike.
    """

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    async def wait(self, wake: asyncio.Event) -> bool:
        """Sleep the current delay; True when ``wake`` was set (at once or meanwhile)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        if wake.is_set():
            return True
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except TimeoutError:
            return False
        return True


class TokenBucket:
    """Bandwidth limit in MB/s (10**6 bytes). ``rate_mb=None`` means unlimited.

    ``burst`` bytes may pass at once (default: a quarter second of traffic, at least 64 KiB).
    A request bigger than the burst is admitted and paid for afterwards (the bucket goes
    negative), so large values are never refused.
    """

    def __init__(
        self,
        rate_mb: float | None,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_mb is not None and rate_mb <= 0:
            raise ValueError("bandwidth must be positive (None: unlimited)")
        self.rate = None if rate_mb is None else rate_mb * 1_000_000
        self.burst = burst if burst is not None else max(64 << 10, int((self.rate or 0) / 4))
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        assert self.rate is not None
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay_for(self, n: int) -> float:
        """Seconds ``consume(n)`` would sleep now (0 when unlimited or affordable)."""
        if self.rate is None:
            return 0.0
        self._refill()
        need = min(n, self.burst) - self._tokens
        return max(0.0, need / self.rate)

    async def consume(self, n: int) -> None:
        if self.rate is None:
            return
        async with self._lock:  # FIFO: one sleeper at a time, each sleeps once
            delay = self.delay_for(n)
            if delay > 0:
                await asyncio.sleep(delay)
                self._refill()
            self._tokens -= n


class ReadAhead(Generic[T]):
    """The reader's next batches, read while the writer waits on the target.

    The pump used to pull one batch, write it, and only then read the next: our reading and
    the target's applying never overlapped. In the incremental phase each batch is a
    transaction awaited before the next (engine/exactly_once.py), so the target sat idle while
    we read, scanned and mapped the next chunk, and we sat idle while it applied. Here a task
    keeps reading (at most ``limit`` batches or ``limit_bytes`` of entries ahead, by ``size``:
    memory stays bounded, big-key chunks included) and ``take`` returns
    everything read so far as one batch: when the target is the slower side, the transactions
    grow instead of waiting on each other. Measured with benchmarks/catchup.py (the 1M-write
    backlog): see docs/ARCHITECTURE.md, "incremental apply".

    A reader error is raised by ``take`` after the batches read before it: what was read is
    still written.
    """

    def __init__(
        self, batches: AsyncIterator[list[T]], size: Callable[[T], int], *, limit: int = 8,
        limit_bytes: int = 8 << 20,
    ) -> None:
        self._batches = batches
        self._size = size
        self._items: deque[list[T]] = deque()
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._bytes = 0
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._done = False
        self._error: Exception | None = None
        self.task = asyncio.create_task(self._run(), name="read-ahead")

    async def _run(self) -> None:
        try:
            async for batch in self._batches:
                self._items.append(batch)
                self._bytes += sum(map(self._size, batch))
                self._ready.set()
                if len(self._items) >= self._limit or self._bytes >= self._limit_bytes:
                    self._space.clear()
                    await self._space.wait()
        except Exception as exc:  # handed to the consumer by take(), in order
            self._error = exc
        finally:
            self._done = True
            self._ready.set()

    async def take(self) -> list[T] | None:
        """Every batch read and not yet taken, as one list; None once the reader has ended."""
        while not self._items:
            if self._done:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                return None
            self._ready.clear()
            await self._ready.wait()
        items = self._items
        batch = items.popleft() if len(items) == 1 else [e for b in items for e in b]
        items.clear()
        self._bytes = 0
        self._space.set()
        return batch

    async def close(self) -> None:
        """Stop reading ahead (the reader's generator is left for its owner to close)."""
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
