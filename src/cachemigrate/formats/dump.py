"""DUMP / RESTORE payloads: build, verify, and the RDB-version gate.

A payload is ``type byte + value (RDB serialization, no key) + RDB version (u16 LE) + CRC64 (u64 LE)``
where the CRC (CRC-64/Jones as Redis uses it) covers everything before it. A server refuses a
payload whose footer version is above its own RDB version (Valkey 9 in strict mode also refuses
the Redis-only range 12..79), but it never looks at the version to parse the value: the type byte
alone decides. A type's serialization has not changed since the version that introduced it, so a
value whose type the target knows can be RESTOREd with the footer relabelled to a version the
target accepts. See ``spec/formats.md`` §1 and §4.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

import anycrc

from cachemigrate.errors import DumpPayloadError
from cachemigrate.formats.rdb.kinds import Vendor, value_type
from cachemigrate.protocol.commands import restore_templates

__all__ = [
    "REDIS_FOREIGN_MAX",
    "REDIS_FOREIGN_MIN",
    "build_payload",
    "crc64",
    "min_rdb_version_for_type",
    "parse_payload",
    "payload_crc_start",
    "payload_footer",
    "payload_version_for_target",
    "restore_packer",
]

_crc = anycrc.Model("CRC64-REDIS")
_calc = _crc.calc
_u64 = struct.Struct("<Q")
_pack_u64 = _u64.pack
_u16 = struct.Struct("<H")
_pack_footer = struct.Struct("<HQ").pack  # RDB version + CRC64: the payload's last 10 bytes

# One prebuilt bytes object per type byte and per footer version: the hot path only concatenates.
_TYPE_PREFIX: Final = tuple(bytes((i,)) for i in range(256))
_VERSION_SUFFIX: Final = tuple(_u16.pack(v) for v in range(256))
# CRC state after the type byte alone: large values are checksummed in place, without a copy.
_TYPE_CRC: Final = tuple(_calc(p) for p in _TYPE_PREFIX)
# Above this size one extra copy of the value costs more than one extra CRC call.
_COPY_LIMIT = 32 << 10

FOOTER_SIZE = 10

# Valkey (>= 9) refuses these footer versions in strict mode: the "foreign" Redis-only range.
REDIS_FOREIGN_MIN = 12
REDIS_FOREIGN_MAX = 79
# The highest RDB version both vendors share (Redis 7.2, Valkey 7.2/8.x).
_LAST_COMMON_VERSION = 11
# The first Valkey-only RDB version (Valkey 9.0, magic VALKEY).
_VALKEY_FIRST = 80


def crc64(data: bytes | bytearray | memoryview, init: int = 0) -> int:
    """CRC-64/Jones as Redis computes it (reflected, init 0, no final xor); ``init`` continues a CRC."""
    return int(_calc(data, init))


def build_payload(type_byte: int, raw_value: bytes, rdb_version: int) -> bytes:
    """The DUMP payload for a value's raw RDB serialization, labelled with ``rdb_version``."""
    if len(raw_value) <= _COPY_LIMIT:
        body = b"".join((_TYPE_PREFIX[type_byte], raw_value, _VERSION_SUFFIX[rdb_version]))
        return b"".join((body, _pack_u64(_calc(body))))
    suffix = _VERSION_SUFFIX[rdb_version]
    crc = _calc(suffix, _calc(raw_value, _TYPE_CRC[type_byte]))
    return b"".join((_TYPE_PREFIX[type_byte], raw_value, suffix, _pack_u64(crc)))


def payload_crc_start(type_byte: int) -> int:
    """The CRC of a payload after its type byte: continue it with ``crc64(value_part, crc)`` as
    the value's bytes stream by, then ``payload_footer`` (a RESTORE whose payload is never held
    whole: ``engine/streamed.py``)."""
    return int(_TYPE_CRC[type_byte])


def payload_footer(crc: int, rdb_version: int) -> bytes:
    """The payload's last 10 bytes: the RDB version and the CRC of everything before them, from
    ``crc``, the CRC of the type byte and the whole value."""
    return _pack_footer(rdb_version, int(_calc(_VERSION_SUFFIX[rdb_version], crc)))


# Per footer version: the CRC after its 2 bytes, as ``table[crc & 0xFFFF] ^ (crc >> 16)``. A
# call into anycrc costs ~0.5 us however short its input (a typed-memoryview setup), a lookup
# ~0.1 us. Appending fixed bytes to a CRC is affine in the CRC and, for 2 bytes of a reflected
# CRC, only its low 16 bits mix; the table is built from 512 anycrc calls (~5 ms, once).
_SUFFIX_CRC: list[list[int] | None] = [None] * 256


def _suffix_table(version: int) -> list[int]:
    suffix = _VERSION_SUFFIX[version]
    lo = [_calc(suffix, x) for x in range(256)]
    f0 = lo[0]
    hi = [_calc(suffix, y << 8) ^ f0 for y in range(256)]
    table = _SUFFIX_CRC[version] = [a ^ b for b in hi for a in lo]
    return table


RestorePacker = Callable[[bytes, int, int, bytes, int], bytes]


def restore_packer(replace: bool) -> RestorePacker:
    """``pack(key, expire_ms, type_byte, raw_value, rdb_version)``: the whole RESP command
    ``RESTORE key ttl payload [REPLACE] ABSTTL`` as one ``bytes`` (``expire_ms`` -1: no TTL).

    The migration hot path: the payload is never built on its own. Its CRC is chained over the
    type byte (precomputed), the value in place and the version, and one ``%``-format of
    ``protocol.commands.restore_templates`` writes the command with the payload's pieces inlined.
    """
    persist, expiring = restore_templates(replace)
    calc, type_crc, prefix, footer, tables = _calc, _TYPE_CRC, _TYPE_PREFIX, _pack_footer, _SUFFIX_CRC

    def pack(key: bytes, expire_ms: int, type_byte: int, raw: bytes, version: int) -> bytes:
        crc = calc(raw, type_crc[type_byte])
        tab = tables[version] or _suffix_table(version)
        crc = tab[crc & 0xFFFF] ^ (crc >> 16)
        if expire_ms < 0:
            return persist % (len(key), key, len(raw) + 11, prefix[type_byte], raw, footer(version, crc))
        ttl = b"%d" % expire_ms
        return expiring % (len(key), key, len(ttl), ttl, len(raw) + 11, prefix[type_byte], raw,
                           footer(version, crc))

    return pack


def parse_payload(payload: bytes | bytearray | memoryview) -> tuple[int, bytes, int]:
    """Verify a payload's footer and CRC; return ``(type_byte, raw_value, rdb_version)``."""
    view = memoryview(payload)
    if len(view) < FOOTER_SIZE + 1:
        raise DumpPayloadError(f"DUMP payload too short ({len(view)} bytes)")
    body = view[:-8]
    (stored,) = _u64.unpack(view[-8:])
    actual = _calc(body)
    if actual != stored:
        raise DumpPayloadError(f"DUMP payload CRC mismatch: stored {stored:#018x}, computed {actual:#018x}")
    (version,) = _u16.unpack(view[-FOOTER_SIZE:-8])
    return view[0], bytes(view[1:-FOOTER_SIZE]), version


# Type bytes that only one vendor's servers understand.
_VENDOR_SPECIFIC_MIN = 22


def min_rdb_version_for_type(type_byte: int, vendor: Vendor = "redis") -> int | None:
    """The RDB version that introduced ``type_byte`` in ``vendor``'s type table (``rdb.kinds``).

    None when no released server of that vendor loads the type (6 MODULE_PRE_GA, unknown bytes,
    Redis's 24..26 on Valkey).
    """
    known = value_type(type_byte, vendor)
    return known.since if known is not None and known.restorable else None


def _accepts(version: int, target_rdb_version: int, target_is_valkey: bool) -> bool:
    if version > target_rdb_version:
        return False
    return not (
        target_is_valkey
        and target_rdb_version >= _VALKEY_FIRST
        and REDIS_FOREIGN_MIN <= version <= REDIS_FOREIGN_MAX
    )


def payload_version_for_target(
    type_byte: int,
    source_rdb_version: int,
    target_rdb_version: int,
    source_is_valkey: bool,
    target_is_valkey: bool,
) -> int | None:
    """The footer version to write so that the target's RESTORE accepts a value of ``type_byte``.

    ``source_is_valkey`` means the source file uses Valkey's type table (magic VALKEY, RDB >= 80);
    ``target_is_valkey`` that the target is a Valkey server. Returns None when the target cannot
    load this type at all: the value must then be rewritten as plain commands.
    """
    source_valkey_table = source_is_valkey and source_rdb_version >= _VALKEY_FIRST
    introduced = min_rdb_version_for_type(type_byte, "valkey" if source_valkey_table else "redis")
    if introduced is None:
        return None
    if type_byte >= _VENDOR_SPECIFIC_MIN:
        # Type 22 is a different structure on each side; Redis's 22..26 do not exist on Valkey.
        if source_valkey_table:
            if not (target_is_valkey and target_rdb_version >= _VALKEY_FIRST):
                return None
        elif target_is_valkey:
            return None
    if introduced > target_rdb_version:
        return None
    version = max(min(source_rdb_version, target_rdb_version), introduced)
    if _accepts(version, target_rdb_version, target_is_valkey):
        return version
    # A Valkey 9 target in strict mode: step down below the foreign range when the type allows it.
    if introduced <= _LAST_COMMON_VERSION and _accepts(
        _LAST_COMMON_VERSION, target_rdb_version, target_is_valkey
    ):
        return _LAST_COMMON_VERSION
    return None
