"""What the transform knows about a target server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cachemigrate.formats.rdb.kinds import Vendor

__all__ = ["Target", "TargetCaps", "at_least"]


class Target(Protocol):
    """What the transform needs to know about the target (``protocol.probe.TargetInfo`` fits)."""

    @property
    def rdb_version(self) -> int: ...  # highest DUMP payload version it takes (7.0: 10, Valkey 9: 80)

    @property
    def vendor(self) -> Vendor: ...

    @property
    def version(self) -> tuple[int, ...]: ...  # server version, e.g. (7, 0, 15)

    @property
    def cluster(self) -> bool: ...

    @property
    def max_bulk_len(self) -> int: ...  # proto-max-bulk-len: the largest argument it takes


@dataclass(frozen=True, slots=True)
class TargetCaps:
    """A Target spelled out by hand (tests, CLI without a probe)."""

    rdb_version: int
    vendor: Vendor = "redis"
    version: tuple[int, ...] = (7, 0, 0)
    cluster: bool = False
    max_bulk_len: int = 512 << 20


def at_least(target: Target, redis: tuple[int, ...], valkey: tuple[int, ...]) -> bool:
    """Whether the target's version reaches ``redis`` (Redis) or ``valkey`` (Valkey)."""
    return target.version >= (valkey if target.vendor == "valkey" else redis)
