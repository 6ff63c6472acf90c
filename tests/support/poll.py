"""Waiting in tests: poll a condition until it holds or a deadline passes — never a bare sleep.

A sleep that waits for something (a checkpoint save, writes to happen, a key to expire) is right
on an idle machine and wrong on a busy one; a poll asks for the thing itself and only its
deadline depends on the machine. Deadlines are generous (CI runs on a shared, loaded machine): a
test waits long only when it is about to fail anyway.

``wait_until`` for synchronous code, ``until`` inside a coroutine (its predicate may be a
coroutine function, and the event loop runs between polls). Both return the predicate's first
truthy value and raise AssertionError naming ``what`` and the last value on timeout; an exception
raised by the predicate propagates at once (a predicate may raise to say "this will never hold").
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 30.0
INTERVAL = 0.05


def _timed_out(what: str, predicate: object, timeout: float, last: object) -> AssertionError:
    name = what or getattr(predicate, "__qualname__", repr(predicate))
    return AssertionError(f"timed out after {timeout:g} s waiting for {name}; last value {last!r:.300}")


def wait_until(
    predicate: Callable[[], T], timeout: float = TIMEOUT, interval: float = INTERVAL, what: str = ""
) -> T:
    """Call ``predicate`` until it returns a truthy value (returned), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, predicate, timeout, value)
        time.sleep(interval)


async def until(
    predicate: Callable[[], T] | Callable[[], Awaitable[T]],
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str = "",
) -> T:
    """``wait_until`` for coroutines: the loop runs between polls; ``predicate`` may be async."""
    deadline = time.monotonic() + timeout
    while True:
        value: Any = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise _timed_out(what, predicate, timeout, value)
        await asyncio.sleep(interval)
