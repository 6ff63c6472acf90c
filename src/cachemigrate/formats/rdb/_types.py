"""RDB type bytes and opcodes, and the table that says which ones a header allows.

Type 22, type 23 and opcode 243 mean different things in Redis and Valkey (formats.md §1), so
the table is picked from the magic and the version together; the value types themselves (names,
kinds, the version that introduced each) are ``kinds.VALUE_TYPES``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachemigrate.errors import RdbFormatError, UnsupportedRdbError

from .kinds import VALUE_TYPES, file_vendor
from .model import RdbHeader

# value types
T_STRING = 0
T_LIST = 1
T_SET = 2
T_ZSET = 3
T_HASH = 4
T_ZSET_2 = 5
T_MODULE_PRE_GA = 6
T_MODULE_2 = 7
T_HASH_ZIPMAP = 9
T_LIST_ZIPLIST = 10
T_SET_INTSET = 11
T_ZSET_ZIPLIST = 12
T_HASH_ZIPLIST = 13
T_LIST_QUICKLIST = 14
T_STREAM_LISTPACKS = 15
T_HASH_LISTPACK = 16
T_ZSET_LISTPACK = 17
T_LIST_QUICKLIST_2 = 18
T_STREAM_LISTPACKS_2 = 19
T_SET_LISTPACK = 20
T_STREAM_LISTPACKS_3 = 21
T_HASH_METADATA_PRE_GA = 22  # Redis 7.4 RCs
T_VALKEY_HASH_2 = 22  # Valkey 9 (VALKEY magic)
T_HASH_LISTPACK_EX_PRE_GA = 23  # Redis 7.4 RCs
T_HASH_METADATA = 24
T_HASH_LISTPACK_EX = 25
T_STREAM_LISTPACKS_4 = 26

# opcodes
OP_KEY_META_OR_SLOT_IMPORT = 243
OP_SLOT_INFO = 244
OP_FUNCTION2 = 245
OP_FUNCTION_PRE_GA = 246
OP_MODULE_AUX = 247
OP_IDLE = 248
OP_FREQ = 249
OP_AUX = 250
OP_RESIZEDB = 251
OP_EXPIRETIME_MS = 252
OP_EXPIRETIME = 253
OP_SELECTDB = 254
OP_EOF = 255

STREAM_TYPES = frozenset({T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2, T_STREAM_LISTPACKS_3,
                          T_STREAM_LISTPACKS_4})

# Highest version we read, per magic.
MAX_REDIS_VERSION = 13
VALKEY_VERSIONS = frozenset({80, 81})

@dataclass(frozen=True, slots=True)
class TypeTable:
    """What one header allows: the value types and how to read the vendor-dependent codes."""

    types: frozenset[int]
    valkey: bool
    key_meta: bool  # opcode 243 is Redis KEY_META
    slot_import: bool  # opcode 243 is Valkey SLOT_IMPORT


def parse_header(data: bytes) -> RdbHeader:
    """Parse the 9-byte magic+version (REDIS0011, VALKEY080)."""
    if data[:5] == b"REDIS":
        digits, magic = data[5:9], "REDIS"
    elif data[:6] == b"VALKEY":
        digits, magic = data[6:9], "VALKEY"
    else:
        raise RdbFormatError(f"not an RDB file: bad magic {bytes(data[:9])!r}", offset=0)
    if not digits.isdigit():
        raise RdbFormatError(f"bad RDB version digits {bytes(digits)!r}", offset=len(magic))
    version = int(digits)
    if magic == "REDIS":
        if version < 1:
            raise RdbFormatError(f"bad RDB version {version}", offset=5)
        if version > MAX_REDIS_VERSION:
            hint = "; 80 and up is Valkey's range, written with the VALKEY magic" if version >= 80 else ""
            raise UnsupportedRdbError(
                f"RDB format version {version} is newer than we read (Redis up to {MAX_REDIS_VERSION}{hint})",
                offset=5,
            )
    elif version not in VALKEY_VERSIONS:
        raise UnsupportedRdbError(
            f"Valkey RDB format version {version} is not one we read (80, 81)", offset=6
        )
    return RdbHeader(magic, version)


def type_table(header: RdbHeader) -> TypeTable:
    v = header.version
    table = VALUE_TYPES[file_vendor(header)]
    if header.is_valkey:
        # Valkey 9 = Redis 7.2 types (RDB 11) + HASH_2 (22); 23 PATH_HASH (81) we do not read.
        types = frozenset(t for t, vt in table.items() if vt.readable and vt.since <= v)
        return TypeTable(types, valkey=True, key_meta=False, slot_import=True)
    # Old files may carry types their version did not define (writers were lenient); accept any
    # type known up to our newest Redis version, except those newer than the file when clear.
    types = frozenset(t for t, vt in table.items() if vt.since <= max(v, 11))
    return TypeTable(types, valkey=False, key_meta=v >= 13, slot_import=False)
