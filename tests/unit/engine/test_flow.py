"""Byte budget and token bucket: waits happen exactly when they should, and never poll."""

from __future__ import annotations

import asyncio

import pytest

from cachemigrate.engine import flow
from cachemigrate.engine.flow import Backoff, ByteBudget, TokenBucket
from cachemigrate.errors import ConnectionLostError
from support.clock import VirtualClock


async def test_budget_waits_until_release() -> None:
    budget = ByteBudget(100)
    await budget.acquire(60)
    await budget.acquire(40)
    waiter = asyncio.create_task(budget.acquire(10))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    budget.release(5)
    await asyncio.sleep(0.01)
    assert not waiter.done()  # 95 + 10 > 100
    budget.release(60)
    await asyncio.wait_for(waiter, 1)
    assert budget.in_flight == 45


async def test_budget_admits_oversized_when_empty() -> None:
    budget = ByteBudget(10)
    await budget.acquire(1000)
    waiter = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    budget.release(1000)
    await asyncio.wait_for(waiter, 1)


async def test_budget_failure_wakes_waiters() -> None:
    budget = ByteBudget(10)
    await budget.acquire(10)
    waiter = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    budget.fail(ConnectionLostError("gone"))
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(ConnectionLostError):
        await budget.acquire(1)
    with pytest.raises(ValueError):
        ByteBudget(0)


def test_bucket_delay_is_exact() -> None:
    now = [100.0]
    bucket = TokenBucket(1.0, burst=100_000, clock=lambda: now[0])
    assert bucket.delay_for(100_000) == 0
    bucket._tokens -= 100_000  # spent
    assert bucket.delay_for(50_000) == pytest.approx(0.05)
    now[0] += 0.05
    assert bucket.delay_for(50_000) == pytest.approx(0.0)
    assert TokenBucket(None).delay_for(10**12) == 0
    with pytest.raises(ValueError):
        TokenBucket(0)


async def test_bucket_rate_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock()
    clock.install(monkeypatch, flow)  # the bucket's sleeps advance the clock they read
    t0 = clock()
    bucket = TokenBucket(2.0, burst=100_000, clock=clock)  # 2 MB/s
    for _ in range(6):
        await bucket.consume(100_000)  # first is the burst, then 5 x 50 ms
    assert clock.sleeps == pytest.approx([0.05] * 5)
    assert clock() - t0 == pytest.approx(0.25)
    clock.sleeps.clear()
    await asyncio.gather(*(bucket.consume(50_000) for _ in range(4)))  # FIFO: one sleeper at a time
    assert clock.sleeps == pytest.approx([0.025] * 4)
    unlimited = TokenBucket(None, clock=clock)
    await unlimited.consume(10**12)
    assert len(clock.sleeps) == 4  # unlimited never sleeps


async def test_backoff_doubles_to_its_cap_and_a_wake_ends_the_wait() -> None:
    backoff = Backoff(first=0.01, cap=0.04)
    wake = asyncio.Event()
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        assert await backoff.wait(wake) is False  # the delay ran out
    assert delays == [0.01, 0.02, 0.04, 0.04]
    backoff.reset()
    assert backoff.delay == 0.01
    slow = Backoff(first=600.0)
    waiting = asyncio.ensure_future(slow.wait(wake))
    await asyncio.sleep(0)
    wake.set()
    assert await asyncio.wait_for(waiting, 30) is True  # woken, not timed out
    assert await slow.wait(wake) is True  # already set: at once
