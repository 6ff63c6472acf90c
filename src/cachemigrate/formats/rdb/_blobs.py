"""Blob encodings held in one RDB string: ziplist, listpack, intset, zipmap (formats.md §3.4).

Integers come out as decimal text (``b"123"``) unless a caller asks for ints (stream nodes).
Any inconsistency raises ``Malformed``; slices are bounds-checked so a truncated blob never
yields a silently short element.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Literal, overload

from ._prims import Malformed

_ZL_HEADER = struct.Struct("<IIH")
_LP_HEADER = struct.Struct("<IH")
_I16 = struct.Struct("<h").unpack_from
_I32 = struct.Struct("<i").unpack_from
_I64 = struct.Struct("<q").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U32BE = struct.Struct(">I").unpack_from

Item = bytes | int


def _int24(blob: bytes, pos: int) -> int:
    v = blob[pos] | (blob[pos + 1] << 8) | (blob[pos + 2] << 16)
    return v - (1 << 24) if v & 0x800000 else v


def ziplist_items(blob: bytes) -> list[bytes]:
    """Every entry of a ziplist, integers as decimal text."""
    n = len(blob)
    if n < 11:
        raise Malformed(f"ziplist of {n} bytes is too short")
    zlbytes = _ZL_HEADER.unpack_from(blob, 0)[0]
    if zlbytes != n:
        raise Malformed(f"ziplist header says {zlbytes} bytes, blob has {n}")
    items: list[bytes] = []
    append = items.append
    pos = 10
    while True:
        b = blob[pos]
        if b == 0xFF:
            break
        pos += 5 if b == 0xFE else 1
        e = blob[pos]
        if e < 0x40:
            end = pos + 1 + e
            append(blob[pos + 1 : end])
        elif e < 0x80:
            end = pos + 2 + (((e & 0x3F) << 8) | blob[pos + 1])
            append(blob[pos + 2 : end])
        elif e == 0x80:
            end = pos + 5 + _U32BE(blob, pos + 1)[0]
            append(blob[pos + 5 : end])
        elif e == 0xC0:
            append(b"%d" % _I16(blob, pos + 1)[0])
            end = pos + 3
        elif e == 0xD0:
            append(b"%d" % _I32(blob, pos + 1)[0])
            end = pos + 5
        elif e == 0xE0:
            append(b"%d" % _I64(blob, pos + 1)[0])
            end = pos + 9
        elif e == 0xF0:
            append(b"%d" % _int24(blob, pos + 1))
            end = pos + 4
        elif e == 0xFE:
            v = blob[pos + 1]
            append(b"%d" % (v - 256 if v > 127 else v))
            end = pos + 2
        elif 0xF1 <= e <= 0xFD:
            append(b"%d" % (e - 0xF1))
            end = pos + 1
        else:
            raise Malformed(f"bad ziplist entry encoding 0x{e:02x} at blob offset {pos}")
        if end >= n:
            raise Malformed("ziplist entry runs past the end of the blob")
        pos = end
    if pos != n - 1:
        raise Malformed("ziplist end marker is not the last byte")
    return items


_SMALL_INTS: tuple[Item, ...] = tuple(range(128))
_SMALL_TEXT: tuple[Item, ...] = tuple(b"%d" % i for i in range(128))


def _lp_other(blob: bytes, pos: int, e: int, append: Callable[[Item], None], ints: bool) -> int:
    """Listpack entries other than 7-bit uints and short strings; returns the next position."""
    v = 0
    if e < 0xE0:
        v = ((e & 0x1F) << 8) | blob[pos + 1]
        if v >= 1 << 12:
            v -= 1 << 13
        size = 2
    elif e < 0xF0:
        size = 2 + (((e & 0x0F) << 8) | blob[pos + 1])
        append(blob[pos + 2 : pos + size])
        return pos + size + _backlen_size(size)
    elif e == 0xF0:
        size = 5 + int(_U32(blob, pos + 1)[0])
        append(blob[pos + 5 : pos + size])
        return pos + size + _backlen_size(size)
    elif e == 0xF1:
        v = _I16(blob, pos + 1)[0]
        size = 3
    elif e == 0xF2:
        v = _int24(blob, pos + 1)
        size = 4
    elif e == 0xF3:
        v = _I32(blob, pos + 1)[0]
        size = 5
    elif e == 0xF4:
        v = _I64(blob, pos + 1)[0]
        size = 9
    else:
        raise Malformed(f"bad listpack entry encoding 0x{e:02x} at blob offset {pos}")
    append(v if ints else b"%d" % v)
    return pos + size + 1


def _backlen_size(size: int) -> int:
    return 1 if size < 128 else 2 if size < 16384 else 3 if size < 2097152 else 4 if size < 268435456 else 5


@overload
def listpack_items(blob: bytes, *, ints: Literal[False] = False) -> list[bytes]: ...
@overload
def listpack_items(blob: bytes, *, ints: Literal[True]) -> list[Item]: ...
def listpack_items(blob: bytes, *, ints: bool = False) -> list[bytes] | list[Item]:
    """Every entry of a listpack; integers as ints when ``ints`` else as decimal text."""
    n = len(blob)
    if n < 7:
        raise Malformed(f"listpack of {n} bytes is too short")
    total = _LP_HEADER.unpack_from(blob, 0)[0]
    if total != n:
        raise Malformed(f"listpack header says {total} bytes, blob has {n}")
    items: list[Item] = []
    append = items.append
    small: tuple[Item, ...] = _SMALL_INTS if ints else _SMALL_TEXT
    pos = 6
    while True:
        e = blob[pos]
        # the two common forms first: 7-bit uint and 6-bit-length string (1-byte backlen)
        if e < 0x80:
            append(small[e])
            pos += 2
        elif e < 0xC0:
            end = pos + 1 + (e & 0x3F)
            append(blob[pos + 1 : end])
            pos = end + 1
        elif e == 0xFF:
            break
        else:
            pos = _lp_other(blob, pos, e, append, ints)
        if pos >= n:
            raise Malformed("listpack entry runs past the end of the blob")
    if pos != n - 1:
        raise Malformed("listpack end marker is not the last byte")
    return items


def intset_items(blob: bytes) -> list[bytes]:
    if len(blob) < 8:
        raise Malformed("intset shorter than its header")
    width, count = struct.unpack_from("<II", blob, 0)
    code = {2: "h", 4: "i", 8: "q"}.get(width)
    if code is None:
        raise Malformed(f"intset with element width {width}")
    if 8 + width * count != len(blob):
        raise Malformed(f"intset of {count} x {width} bytes does not fill its {len(blob)}-byte blob")
    return [b"%d" % v for v in struct.unpack_from(f"<{count}{code}", blob, 8)]


def _zm_len(blob: bytes, pos: int) -> tuple[int, int]:
    b = blob[pos]
    if b < 254:
        return b, pos + 1
    if b == 254:
        return _U32(blob, pos + 1)[0], pos + 5
    raise Malformed("zipmap length byte 255 where a length was expected")


def zipmap_items(blob: bytes) -> list[tuple[bytes, bytes]]:
    n = len(blob)
    pos = 1
    out: list[tuple[bytes, bytes]] = []
    while blob[pos] != 0xFF:
        klen, pos = _zm_len(blob, pos)
        key = blob[pos : pos + klen]
        pos += klen
        vlen, pos = _zm_len(blob, pos)
        free = blob[pos]
        val = blob[pos + 1 : pos + 1 + vlen]
        pos += 1 + vlen + free
        if pos >= n or len(val) != vlen or len(key) != klen:
            raise Malformed("zipmap entry runs past the end of the blob")
        out.append((key, val))
    return out
