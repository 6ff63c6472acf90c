"""A virtual clock for code that reads a clock and sleeps: time passes only when it sleeps.

Install it into one module with ``clock.install(monkeypatch, module)``: that module's
``asyncio.sleep`` records the delay and advances the clock instead of waiting, every other
``asyncio`` name stays the real one. A test then asserts the delays the code chose (exact, on any
machine) rather than the seconds a busy machine took.
"""

from __future__ import annotations

import asyncio
import types

import pytest

_real_sleep = asyncio.sleep


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float, result: object = None) -> object:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await _real_sleep(0)  # still a suspension point, as the real sleep is
        return result

    def install(self, monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
        """Give ``module`` an ``asyncio`` whose ``sleep`` is this clock's (the rest is asyncio)."""
        fake = types.ModuleType("asyncio")
        fake.__dict__.update(asyncio.__dict__)
        fake.sleep = self.sleep  # type: ignore[assignment]
        monkeypatch.setattr(module, "asyncio", fake)
