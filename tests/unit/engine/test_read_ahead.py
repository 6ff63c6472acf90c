"""ReadAhead: the pump's next batches read while the writer waits (engine/flow.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cachemigrate.engine.flow import ReadAhead


async def _batches(n: int, gate: asyncio.Event | None = None, fail: bool = False) -> AsyncIterator[list[int]]:
    for i in range(n):
        if gate is not None and i == 1:
            await gate.wait()
        yield [i, i]
    if fail:
        raise OSError("link lost")


async def test_takes_everything_read_so_far_in_order() -> None:
    ahead = ReadAhead(_batches(5), lambda e: 1)
    await asyncio.sleep(0)  # the read-ahead task runs
    assert await ahead.take() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert await ahead.take() is None
    await ahead.close()


async def test_bounded_by_batches_and_by_bytes() -> None:
    ahead = ReadAhead(_batches(20), lambda e: 1, limit=3)
    for _ in range(5):
        await asyncio.sleep(0)
    assert await ahead.take() == [0, 0, 1, 1, 2, 2]  # stopped reading at 3 batches
    await ahead.close()
    ahead = ReadAhead(_batches(20), lambda e: 1000, limit=100, limit_bytes=3000)
    for _ in range(5):
        await asyncio.sleep(0)
    assert await ahead.take() == [0, 0, 1, 1]  # 4000 bytes >= 3000: stopped after two
    await ahead.close()


async def test_waits_for_the_next_batch() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_batches(3, gate), lambda e: 1)
    assert await ahead.take() == [0, 0]
    waiting = asyncio.create_task(ahead.take())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set()
    assert await asyncio.wait_for(waiting, 5) in ([1, 1], [1, 1, 2, 2])
    await ahead.close()


async def test_an_error_comes_after_the_batches_read_before_it() -> None:
    ahead = ReadAhead(_batches(2, fail=True), lambda e: 1)
    await asyncio.sleep(0)
    assert await ahead.take() == [0, 0, 1, 1]
    with pytest.raises(OSError, match="link lost"):
        await ahead.take()
    await ahead.close()


async def test_close_stops_a_read_in_progress() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_batches(3, gate), lambda e: 1)
    assert await ahead.take() == [0, 0]
    await ahead.close()
    assert ahead.task.cancelled()
