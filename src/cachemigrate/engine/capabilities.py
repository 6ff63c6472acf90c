"""What the transform knows about a target server, and the names of RDB value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from cachemigrate.formats.dump import Vendor

__all__ = ["TYPE_NAMES", "TYPE_NAME_BY_BYTE", "Target", "TargetCaps", "at_least", "type_name"]

# Type byte -> the name used in Entry.tag and the summary. 22/23 are hashes for both vendors.
TYPE_NAMES: Final[dict[int, str]] = {
    0: "string",
    1: "list", 10: "list", 14: "list", 18: "list",
    2: "set", 11: "set", 20: "set",
    3: "zset", 5: "zset", 12: "zset", 17: "zset",
    4: "hash", 9: "hash", 13: "hash", 16: "hash", 22: "hash", 23: "hash", 24: "hash", 25: "hash",
    15: "stream", 19: "stream", 21: "stream", 26: "stream",
    6: "module", 7: "module",
}  # fmt: skip
TYPE_NAME_BY_BYTE: Final = tuple(TYPE_NAMES.get(t, f"type{t}") for t in range(256))


def type_name(type_byte: int) -> str:
    return TYPE_NAME_BY_BYTE[type_byte]


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


@dataclass(frozen=True, slots=True)
class TargetCaps:
    """A Target spelled out by hand (tests, CLI without a probe)."""

    rdb_version: int
    vendor: Vendor = "redis"
    version: tuple[int, ...] = (7, 0, 0)
    cluster: bool = False


def at_least(target: Target, redis: tuple[int, ...], valkey: tuple[int, ...]) -> bool:
    """Whether the target's version reaches ``redis`` (Redis) or ``valkey`` (Valkey)."""
    return target.version >= (valkey if target.vendor == "valkey" else redis)
