"""The data type (as TYPE reports it) behind each RDB type byte, for summaries and tags."""

from __future__ import annotations

_BY_BYTE = {
    0: "string",
    1: "list", 10: "list", 14: "list", 18: "list",
    2: "set", 11: "set", 20: "set",
    3: "zset", 5: "zset", 12: "zset", 17: "zset",
    4: "hash", 9: "hash", 13: "hash", 16: "hash", 22: "hash", 23: "hash", 24: "hash", 25: "hash",
    15: "stream", 19: "stream", 21: "stream", 26: "stream",
    6: "module", 7: "module",
}


def logical_type(type_byte: int, *, is_valkey: bool = False) -> str:
    """'string', 'list', 'set', 'zset', 'hash', 'stream' or 'module' ('unknown' otherwise).

    Valkey's type 23 (PATH_HASH, RDB 81) is not a hash of Redis's kind; it is named apart.
    """
    if is_valkey and type_byte == 23:
        return "path_hash"
    return _BY_BYTE.get(type_byte, "unknown")
