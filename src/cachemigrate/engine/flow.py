"""Flow control: a byte budget for bytes in flight, a bandwidth token bucket, and the backoff
between reconnect attempts.

None polls: the budget wakes waiters from ``release()``, the bucket sleeps exactly as long as
the missing tokens take to accrue, a backoff wait ends early when its wake event is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


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
