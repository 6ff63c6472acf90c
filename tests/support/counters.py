"""A writer of INCR counters that counts what the source acknowledged: after a fault, the target
must hold exactly those counts (a lost write shows as a lower value, a doubled one as a higher)."""

from __future__ import annotations

import json
import threading
import time

import redis

from support.poll import until


class CounterWriter(threading.Thread):
    """INCRs round-robin over ``keys`` counters ``<prefix><i>`` of one server, one thread."""

    def __init__(
        self, port: int, *, password: str | None = None, keys: int = 50, prefix: str = "fault:ctr:",
        pause: float = 0.0005, db: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, password=password, db=db)
        self.keys = [f"{prefix}{i}" for i in range(keys)]
        self.counts = [0] * keys
        self.pause = pause
        self.ops = 0
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                i = self.ops % len(self.keys)
                self.client.incr(self.keys[i])
                self.counts[i] += 1  # only once the source acknowledged it
                self.ops += 1
                if self.pause:
                    time.sleep(self.pause)
        except BaseException as exc:  # surfaced by stop() and more()
            self.error = exc

    async def more(self, n: int, timeout: float = 60) -> int:
        """Until ``n`` more INCRs are acknowledged than now (a count, not a time)."""
        goal = self.ops + n

        def done() -> bool:
            if self.error is not None or not self.is_alive():
                raise AssertionError(f"the counter writer stopped after {self.ops} INCRs: {self.error!r}")
            return self.ops >= goal

        await until(done, timeout, what=f"{n} more INCRs")
        return self.ops

    def stop(self) -> int:
        self.stop_event.set()
        self.join(10)
        self.client.close()
        if self.error is not None:
            raise self.error
        return self.ops

    def lost_and_doubled(self, target: redis.Redis) -> tuple[int, int]:
        """(INCRs the target is missing, INCRs it applied twice), summed over the counters."""
        values = target.mget(self.keys)
        lost = doubled = 0
        for want, raw in zip(self.counts, values, strict=True):
            got = int(raw) if raw is not None else 0
            lost += max(0, want - got)
            doubled += max(0, got - want)
        return lost, doubled


def fault_row(**fields: object) -> None:
    """One measured row of the fault table (issue 13's closing note): printed, seen with -s."""
    print("FAULT-ROW " + json.dumps(fields, sort_keys=True), flush=True)
