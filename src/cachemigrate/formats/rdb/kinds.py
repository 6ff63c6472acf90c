"""The RDB value types of each vendor: the one table every reader of type bytes uses.

Type bytes 0..21 mean the same in Redis and Valkey. From 22 on the two diverge (formats.md §1):
Redis 7.4+ has 22..25 (hashes with field TTLs, the first two only in 7.4 RCs) and Redis 8.6 26
(streams v4); Valkey 9 (magic ``VALKEY``, RDB 80) has 22 HASH_2 and Valkey 9.2 (RDB 81) 23
PATH_HASH. A file's table is chosen by its magic: a Valkey 7.2/8.x server writes ``REDIS0011``,
which is the Redis table. ``since`` is in the vendor's numbering (Valkey's own types 80, 81).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from .model import RdbHeader

__all__ = ["VALUE_TYPES", "ValueType", "Vendor", "file_vendor", "kinds_by_byte", "type_kind", "value_type"]

Vendor = Literal["redis", "valkey"]


@dataclass(frozen=True, slots=True)
class ValueType:
    """One value type byte of one vendor."""

    name: str  # the encoding, as the vendor's rdb.h calls it (lower case, without RDB_TYPE_)
    kind: str  # the data type the key has (what TYPE reports): string, list, hash...
    since: int  # the RDB version that introduced it
    restorable: bool = True  # False: no released server loads it (4.0 RCs' module type)
    readable: bool = True  # False: we do not know its serialization (Valkey's PATH_HASH)


def _table(*rows: tuple[int, str, str, int]) -> dict[int, ValueType]:
    return {t: ValueType(name, kind, since) for t, name, kind, since in rows}


_COMMON: Final = {
    **_table(
        (0, "string", "string", 1), (1, "list", "list", 1), (2, "set", "set", 1),
        (3, "zset", "zset", 1), (4, "hash", "hash", 1), (5, "zset_2", "zset", 8),
        (7, "module_2", "module", 8), (9, "hash_zipmap", "hash", 2),
        (10, "list_ziplist", "list", 2), (11, "set_intset", "set", 2),
        (12, "zset_ziplist", "zset", 2),
        # RDB 4 (dev, c7d7d0a80); first released with 2.6 (RDB 6)
        (13, "hash_ziplist", "hash", 4),
        (14, "list_quicklist", "list", 7), (15, "stream_listpacks", "stream", 9),
        (16, "hash_listpack", "hash", 10), (17, "zset_listpack", "zset", 10),
        (18, "list_quicklist_2", "list", 10), (19, "stream_listpacks_2", "stream", 10),
        (20, "set_listpack", "set", 11), (21, "stream_listpacks_3", "stream", 11),
    ),
    # Module values of the 4.0 RCs: no id to find the module by; GA servers refuse them.
    6: ValueType("module_pre_ga", "module", 8, restorable=False),
}  # fmt: skip

VALUE_TYPES: Final[Mapping[Vendor, Mapping[int, ValueType]]] = {
    "redis": {
        **_COMMON,
        **_table(
            (22, "hash_metadata_pre_ga", "hash", 12), (23, "hash_listpack_ex_pre_ga", "hash", 12),
            (24, "hash_metadata", "hash", 12), (25, "hash_listpack_ex", "hash", 12),
            (26, "stream_listpacks_4", "stream", 13),
        ),
    },
    "valkey": {
        **_COMMON,
        22: ValueType("hash_2", "hash", 80),
        # Whether TYPE calls it a hash is not known here: it is named apart until we read it.
        23: ValueType("path_hash", "path_hash", 81, readable=False),
    },
}  # fmt: skip

_UNKNOWN = "unknown"
_KINDS: Final[Mapping[Vendor, tuple[str, ...]]] = {
    vendor: tuple(table[t].kind if t in table else _UNKNOWN for t in range(256))
    for vendor, table in VALUE_TYPES.items()
}


def file_vendor(header: RdbHeader) -> Vendor:
    """Whose type table a file uses: its magic decides (``VALKEY``: Valkey's, ``REDIS``: Redis's)."""
    return "valkey" if header.is_valkey else "redis"


def value_type(type_byte: int, vendor: Vendor = "redis") -> ValueType | None:
    """``type_byte`` in ``vendor``'s table; None when that vendor has no such type."""
    return VALUE_TYPES[vendor].get(type_byte)


def type_kind(type_byte: int, vendor: Vendor = "redis") -> str:
    """'string', 'list', 'set', 'zset', 'hash', 'stream' or 'module' ('unknown' otherwise)."""
    return _KINDS[vendor][type_byte] if 0 <= type_byte < 256 else _UNKNOWN


def kinds_by_byte(vendor: Vendor = "redis") -> tuple[str, ...]:
    """``type_kind`` for each of the 256 type bytes, for lookups on a hot path."""
    return _KINDS[vendor]
