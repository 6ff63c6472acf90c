"""Helpers shared by the RDB parser tests: parse whole inputs, merge chunks, build tiny RDBs."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import anycrc

from cachemigrate.formats.rdb import (
    End,
    HashValue,
    KeyRecord,
    ListValue,
    ModuleValue,
    RdbHeader,
    RdbParser,
    Record,
    SetValue,
    StreamValue,
    StringValue,
    Value,
    ValueChunk,
    ZSetValue,
    decode_value,
)

CRC = anycrc.Model("CRC64-REDIS")


def parse_bytes(
    data: bytes, pieces: Iterable[int] | None = None, **opts: object
) -> tuple[list[Record], RdbParser]:
    """Feed data whole or cut at the given sizes; return every record and the parser (closed)."""
    p = RdbParser(**opts)  # type: ignore[arg-type]
    out: list[Record] = []
    if pieces is None:
        p.feed(data)
        out.extend(p.records())
    else:
        pos = 0
        for n in pieces:
            if pos >= len(data):
                break
            p.feed(data[pos : pos + n])
            pos += n
            out.extend(p.records())
        if pos < len(data):
            p.feed(data[pos:])
            out.extend(p.records())
    p.close()
    return out, p


def random_pieces(seed: int, total: int, max_piece: int = 4096) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(1, max_piece))))
    return sizes


def merged_values(records: Sequence[Record], header: RdbHeader) -> list[tuple[int, bytes, int, Value]]:
    """(db, key, type, decoded value) per key, merging a big key's chunks into one value."""
    out: list[tuple[int, bytes, int, Value]] = []
    pending: KeyRecord | None = None
    acc: Value | None = None
    for r in records:
        if isinstance(r, KeyRecord):
            if r.big:
                pending, acc = r, None
            else:
                value = decode_value(r.type_byte, r.value, header=header, key=r.key, offset=r.offset)
                out.append((r.db, r.key, r.type_byte, value))
        elif isinstance(r, ValueChunk):
            assert pending is not None and r.key == pending.key
            acc = r.value if acc is None else merge(acc, r.value)
            if r.last:
                out.append((pending.db, pending.key, pending.type_byte, acc))
                pending, acc = None, None
    assert pending is None, "a big key's chunks did not end with last=True"
    return out


def merge(a: Value, b: Value) -> Value:
    if isinstance(a, StringValue) and isinstance(b, StringValue):
        return StringValue(a.data + b.data)
    if isinstance(a, ListValue) and isinstance(b, ListValue):
        return ListValue(a.items + b.items)
    if isinstance(a, SetValue) and isinstance(b, SetValue):
        return SetValue(a.members + b.members)
    if isinstance(a, ZSetValue) and isinstance(b, ZSetValue):
        return ZSetValue(a.items + b.items)
    if isinstance(a, HashValue) and isinstance(b, HashValue):
        return HashValue(a.items + b.items, {**a.field_expires, **b.field_expires})
    if isinstance(a, StreamValue) and isinstance(b, StreamValue):
        return StreamValue(a.entries + b.entries, b.length, b.last_id, b.first_id, b.max_deleted_id,
                           b.entries_added, b.groups)
    raise AssertionError(f"cannot merge {type(a).__name__} with {type(b).__name__}")


def plain(v: Value) -> object:
    """A comparable form (NaN-safe, order-insensitive where Redis is)."""
    if isinstance(v, StringValue):
        return v.data
    if isinstance(v, ListValue):
        return list(v.items)
    if isinstance(v, SetValue):
        return sorted(v.members)
    if isinstance(v, ZSetValue):
        return sorted((m, repr(s)) for m, s in v.items)
    if isinstance(v, HashValue):
        return sorted(v.items), sorted(v.field_expires.items())
    if isinstance(v, StreamValue):
        return (v.entries, v.length, v.last_id, v.first_id, v.max_deleted_id, v.entries_added, v.groups)
    if isinstance(v, ModuleValue):
        return (v.module_name, v.module_id, v.raw)
    raise AssertionError(type(v))


# ---- tiny RDB builder ---------------------------------------------------------------------------


def enc_len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def enc_str(s: bytes) -> bytes:
    return enc_len(len(s)) + s


def build_rdb(body: bytes, version: int = 9, magic: bytes = b"REDIS", checksum: bool = True) -> bytes:
    head = magic + (b"%04d" % version if magic == b"REDIS" else b"%03d" % version)
    data = head + b"\xfe\x00" + body + b"\xff"
    if version >= 5:
        data += (CRC.calc(data) if checksum else 0).to_bytes(8, "little")
    return data


def corpus_bytes(path: Path) -> bytes:
    return path.read_bytes()


def end_of(records: Sequence[Record]) -> End:
    assert records and isinstance(records[-1], End), records[-1:] if records else "no records"
    return records[-1]
