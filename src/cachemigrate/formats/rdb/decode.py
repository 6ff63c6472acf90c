"""Decode a serialized value into the ``model`` value classes (the rewrite path).

Collections are read as repeated element groups; ``GROUP_DECODERS`` is shared with the big-key
path, which decodes the same groups a bounded number at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cachemigrate.errors import RdbFormatError, UnsupportedRdbError

from . import _types as T
from ._blobs import intset_items, listpack_items, ziplist_items, zipmap_items
from ._prims import SHORT, Malformed, f64_from, i64_from, module_name, read_double_ascii, read_len
from ._prims import read_string as _rs
from ._stream import decode_stream
from .kinds import file_vendor, value_type
from .model import (
    NO_EXPIRE,
    HashValue,
    ListValue,
    ModuleValue,
    RdbHeader,
    SetValue,
    StringValue,
    Value,
    ZSetValue,
)

_PLAIN, _PACKED = 1, 2

# A group decoder reads one element group at pos and appends what it holds to the value.
GroupDecoder = Callable[[bytes, int, Value, int], int]


def _score(s: bytes) -> float:
    try:
        return float(s)
    except ValueError:
        raise Malformed(f"bad zset score {s[:32]!r}") from None


# Each decoder takes the value its table entry makes (the assert says which to mypy).
# A SHORT exception (IndexError...) means "more bytes needed" to the big-key path, which then
# waits: a blob read whole that is malformed inside must say so instead (_whole), or a damaged
# node of a big list is taken for a value still arriving (and reported, at the end, as a file
# that "ended inside a record").


def _whole(items: Callable[[bytes], list[bytes]], blob: bytes) -> list[bytes]:
    try:
        return items(blob)
    except SHORT:
        raise Malformed("blob ends early (its entries run past its length)") from None


def _g_list_member(buf: bytes, pos: int, v: Value, _: int) -> int:
    s, pos = _rs(buf, pos)
    assert isinstance(v, ListValue)
    v.items.append(s)
    return pos


def _g_set_member(buf: bytes, pos: int, v: Value, _: int) -> int:
    s, pos = _rs(buf, pos)
    assert isinstance(v, SetValue)
    v.members.append(s)
    return pos


def _g_quicklist_node(buf: bytes, pos: int, v: Value, _: int) -> int:
    s, pos = _rs(buf, pos)
    assert isinstance(v, ListValue)
    v.items.extend(_whole(ziplist_items, s))
    return pos


def _g_quicklist2_node(buf: bytes, pos: int, v: Value, _: int) -> int:
    container, pos = read_len(buf, pos)
    s, pos = _rs(buf, pos)
    assert isinstance(v, ListValue)
    if container == _PLAIN:
        v.items.append(s)
    elif container == _PACKED:
        v.items.extend(_whole(listpack_items, s))
    else:
        raise Malformed(f"quicklist node container {container} (expected 1 PLAIN or 2 PACKED)")
    return pos


def _g_hash(buf: bytes, pos: int, v: Value, _: int) -> int:
    f, pos = _rs(buf, pos)
    val, pos = _rs(buf, pos)
    assert isinstance(v, HashValue)
    v.items.append((f, val))
    return pos


def _g_zset(buf: bytes, pos: int, v: Value, _: int) -> int:
    m, pos = _rs(buf, pos)
    score, pos = read_double_ascii(buf, pos)
    assert isinstance(v, ZSetValue)
    v.items.append((m, score))
    return pos


def _g_zset2(buf: bytes, pos: int, v: Value, _: int) -> int:
    m, pos = _rs(buf, pos)
    assert isinstance(v, ZSetValue)
    v.items.append((m, f64_from(buf, pos)[0]))
    return pos + 8


def _g_hash_meta(buf: bytes, pos: int, v: Value, min_expire: int) -> int:
    """HASH_METADATA (24): ttl relative to minExpire; PRE_GA (22, min_expire<0): absolute."""
    ttl, pos = read_len(buf, pos)
    f, pos = _rs(buf, pos)
    val, pos = _rs(buf, pos)
    assert isinstance(v, HashValue)
    v.items.append((f, val))
    if ttl:
        v.field_expires[f] = ttl if min_expire < 0 else ttl + min_expire - 1
    return pos


def _g_valkey_hash2(buf: bytes, pos: int, v: Value, _: int) -> int:
    f, pos = _rs(buf, pos)
    val, pos = _rs(buf, pos)
    exp = i64_from(buf, pos)[0]
    assert isinstance(v, HashValue)
    v.items.append((f, val))
    if exp != NO_EXPIRE:
        v.field_expires[f] = exp
    return pos + 8


# type -> (empty value factory, group decoder, has an 8-byte minExpire prefix)
GROUP_DECODERS: dict[int, tuple[Callable[[], Value], GroupDecoder, bool]] = {
    T.T_LIST: (lambda: ListValue([]), _g_list_member, False),
    T.T_SET: (lambda: SetValue([]), _g_set_member, False),
    T.T_LIST_QUICKLIST: (lambda: ListValue([]), _g_quicklist_node, False),
    T.T_LIST_QUICKLIST_2: (lambda: ListValue([]), _g_quicklist2_node, False),
    T.T_HASH: (lambda: HashValue([]), _g_hash, False),
    T.T_ZSET: (lambda: ZSetValue([]), _g_zset, False),
    T.T_ZSET_2: (lambda: ZSetValue([]), _g_zset2, False),
    T.T_HASH_METADATA_PRE_GA: (lambda: HashValue([]), _g_hash_meta, False),
    T.T_HASH_METADATA: (lambda: HashValue([]), _g_hash_meta, True),
}
VALKEY_GROUP_DECODERS = {t: g for t, g in GROUP_DECODERS.items() if t != T.T_HASH_METADATA_PRE_GA}
VALKEY_GROUP_DECODERS[T.T_VALKEY_HASH_2] = (lambda: HashValue([]), _g_valkey_hash2, False)


def _pairs(items: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(items) % 2:
        raise Malformed(f"odd number of entries ({len(items)}) in a field/value blob")
    it = iter(items)
    return list(zip(it, it, strict=True))


def _hash_ex(blob: bytes) -> HashValue:
    items = listpack_items(blob)
    if len(items) % 3:
        raise Malformed(f"HASH_LISTPACK_EX holds {len(items)} entries, not triplets")
    value = HashValue([])
    for i in range(0, len(items), 3):
        f, val, ttl = items[i], items[i + 1], int(items[i + 2])
        value.items.append((f, val))
        if ttl:
            value.field_expires[f] = ttl
    return value


def decode_blob(t: int, blob: bytes) -> Value:
    """Decode a single-string encoding (zipmap, ziplist, intset, listpack) of type t."""
    if t == T.T_STRING:
        return StringValue(blob)
    if t == T.T_LIST_ZIPLIST:
        return ListValue(ziplist_items(blob))
    if t == T.T_SET_INTSET:
        return SetValue(intset_items(blob))
    if t == T.T_SET_LISTPACK:
        return SetValue(listpack_items(blob))
    if t in (T.T_ZSET_ZIPLIST, T.T_ZSET_LISTPACK):
        items = ziplist_items(blob) if t == T.T_ZSET_ZIPLIST else listpack_items(blob)
        return ZSetValue([(m, _score(s)) for m, s in _pairs(items)])
    if t == T.T_HASH_ZIPMAP:
        return HashValue(zipmap_items(blob))
    if t == T.T_HASH_ZIPLIST:
        return HashValue(_pairs(ziplist_items(blob)))
    if t == T.T_HASH_LISTPACK:
        return HashValue(_pairs(listpack_items(blob)))
    if t in (T.T_HASH_LISTPACK_EX, T.T_HASH_LISTPACK_EX_PRE_GA):
        return _hash_ex(blob)
    raise Malformed(f"type {t} is not a blob encoding")


def decode_at(buf: bytes, pos: int, t: int, header: RdbHeader) -> tuple[Value, int]:
    """Decode the value of type t at pos; returns it and the offset just past it."""
    valkey = header.is_valkey
    groups = VALKEY_GROUP_DECODERS if valkey else GROUP_DECODERS
    g = groups.get(t)
    if g is not None:
        make, fn, has_min = g
        min_expire = -1
        if has_min:
            min_expire = i64_from(buf, pos)[0]
            pos += 8
        n, pos = read_len(buf, pos)
        value = make()
        for _ in range(n):
            pos = fn(buf, pos, value, min_expire)
        return value, pos
    if t in T.STREAM_TYPES:
        return decode_stream(buf, pos, t)
    if t == T.T_MODULE_2:
        start = pos
        mid, pos = read_len(buf, pos)
        from ._prims import skip_module_ops

        pos = skip_module_ops(buf, pos)
        return ModuleValue(module_name(mid), mid, buf[start:pos]), pos
    if t == T.T_MODULE_PRE_GA:
        raise UnsupportedRdbError("module value of pre-GA type 6 cannot be read without its module")
    if t == T.T_HASH_LISTPACK_EX:
        pos += 8  # minExpire: loaders ignore it, the listpack holds absolute TTLs
    known = value_type(t, file_vendor(header))
    if known is not None and known.readable:
        blob, pos = _rs(buf, pos)
        return decode_blob(t, blob), pos
    raise UnsupportedRdbError(f"unknown value type {t}", type_byte=t)


def decode_value(
    type_byte: int,
    raw: bytes,
    *,
    header: RdbHeader,
    key: bytes | None = None,
    offset: int | None = None,
) -> Value:
    """Decode ``KeyRecord.value`` bytes of the given type. Errors name the key and offset."""
    try:
        value, end = decode_at(raw, 0, type_byte, header)
        if end != len(raw):
            raise Malformed(f"{len(raw) - end} bytes left after the value")
        return value
    except RdbFormatError as exc:
        raise type(exc)(exc.reason, offset=offset, key=key, type_byte=type_byte) from None
    except (*SHORT, Malformed, ValueError, OverflowError, struct.error) as exc:
        msg = "value ends early" if isinstance(exc, (IndexError, *SHORT)) else str(exc)
        raise RdbFormatError(f"malformed value: {msg}", offset=offset, key=key,
                             type_byte=type_byte) from None
