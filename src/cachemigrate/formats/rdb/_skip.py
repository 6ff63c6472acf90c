"""Walk a serialized value without decoding it: where does it end?

``skip_value`` is the fast path's walker for every non-string type. Collections are also
described as repeated element groups (``GROUP_SKIP``) so the resumable slow path and the big-key
path can walk them one group at a time.

The element loops (``_skip_strings``, ``_skip_zset2``, ``_skip_quicklist2``...) look alike on
purpose: each inlines the 1- and 2-byte string lengths instead of calling ``skip_string`` per
element, 38 vs 104 ns an element for a skiplist zset and 68 vs 130 ns for plain strings
(CPython 3.11, 10-byte members).
"""

from __future__ import annotations

from collections.abc import Callable

from cachemigrate.errors import UnsupportedRdbError

from . import _types as T
from ._prims import SHORT, Malformed, Short, read_len, skip_module_ops, skip_string

_c_skip_groups: Callable[[bytes, int, int, int, int], tuple[int, int]] | None
try:  # the C extension itself (not walk.py, which imports the package: no import circle)
    from ._walk import skip_groups as _c_skip_groups
except ImportError:
    _c_skip_groups = None


def _skip_strings(buf: bytes, pos: int, n: int) -> int:
    """Skip n consecutive RDB strings; the 1-byte-length case is inlined."""
    end = len(buf)
    while n:
        b = buf[pos]
        if b < 0x40:
            pos += 1 + b
        elif b < 0x80:
            pos += 2 + (((b & 0x3F) << 8) | buf[pos + 1])
        else:
            pos = skip_string(buf, pos)
        if pos > end:
            raise Short
        n -= 1
    return pos


def _skip_zset2(buf: bytes, pos: int, n: int) -> int:
    """n x (member string, 8-byte double): the skiplist zset, inlined."""
    end = len(buf)
    while n:
        b = buf[pos]
        if b < 0x40:
            pos += 9 + b
        elif b < 0x80:
            pos += 10 + (((b & 0x3F) << 8) | buf[pos + 1])
        else:
            pos = skip_string(buf, pos) + 8
        n -= 1
    if pos > end:
        raise Short
    return pos


def _skip_quicklist2(buf: bytes, pos: int, n: int) -> int:
    """n x (container length, node string): QUICKLIST_2, inlined for the usual 1-byte container."""
    end = len(buf)
    while n:
        if buf[pos] < 0x40:
            pos += 1
        else:
            _, pos = read_len(buf, pos)
        b = buf[pos]
        if b < 0x40:
            pos += 1 + b
        elif b < 0x80:
            pos += 2 + (((b & 0x3F) << 8) | buf[pos + 1])
        else:
            pos = skip_string(buf, pos)
        n -= 1
    if pos > end:
        raise Short
    return pos


def _g_string(buf: bytes, pos: int) -> int:
    return _skip_strings(buf, pos, 1)


def _g_two_strings(buf: bytes, pos: int) -> int:
    return _skip_strings(buf, pos, 2)


def _g_zset(buf: bytes, pos: int) -> int:
    pos = _skip_strings(buf, pos, 1)
    n = buf[pos]
    return pos + 1 + (n if n < 253 else 0)


def _g_zset2(buf: bytes, pos: int) -> int:
    return _skip_strings(buf, pos, 1) + 8


def _g_quicklist2(buf: bytes, pos: int) -> int:
    _, pos = read_len(buf, pos)
    return _skip_strings(buf, pos, 1)


def _g_hash_meta(buf: bytes, pos: int) -> int:
    _, pos = read_len(buf, pos)
    return _skip_strings(buf, pos, 2)


def _g_valkey_hash2(buf: bytes, pos: int) -> int:
    return _skip_strings(buf, pos, 2) + 8


GroupSkip = Callable[[bytes, int], int]

# type -> (bytes before the count, one group's skipper); Redis table.
GROUP_SKIP: dict[int, tuple[int, GroupSkip]] = {
    T.T_LIST: (0, _g_string),
    T.T_SET: (0, _g_string),
    T.T_LIST_QUICKLIST: (0, _g_string),
    T.T_HASH: (0, _g_two_strings),
    T.T_ZSET: (0, _g_zset),
    T.T_ZSET_2: (0, _g_zset2),
    T.T_LIST_QUICKLIST_2: (0, _g_quicklist2),
    T.T_HASH_METADATA_PRE_GA: (0, _g_hash_meta),
    T.T_HASH_METADATA: (8, _g_hash_meta),
}
VALKEY_GROUP_SKIP = dict(GROUP_SKIP)
VALKEY_GROUP_SKIP[T.T_VALKEY_HASH_2] = (0, _g_valkey_hash2)

# The C walker's shape of each group skipper (walk.skip_groups; _walk.c skip_group).
GROUP_SHAPES: dict[GroupSkip, int] = {
    _g_string: 0, _g_two_strings: 1, _g_zset: 2, _g_zset2: 3, _g_quicklist2: 4, _g_hash_meta: 5,
    _g_valkey_hash2: 6,
}


def skip_groups(buf: bytes, pos: int, fn: GroupSkip, n: int) -> tuple[int, int]:
    """Skip at most n groups of ``fn`` from pos, up to the last whole one buffered: (pos, done).

    In C when the walker is built (a few ns a group, against 40-130 in Python); when not even one
    group is whole, ``fn`` itself is asked, so that damage raises (Malformed) and a cut raises
    Short as the Python walk does.
    """
    c_skip = _c_skip_groups
    if c_skip is not None:
        shape = GROUP_SHAPES.get(fn)
        if shape is not None:
            j, done = c_skip(buf, pos, len(buf), shape, n)
            if done:
                return j, done
    done = 0
    end = len(buf)
    while done < n:
        try:
            j = fn(buf, pos)
        except SHORT:
            if done:
                break
            raise
        if j > end:
            if done:
                break
            raise Short
        pos = j
        done += 1
    return pos, done


# Types whose value is one RDB string (possibly after a fixed prefix).
BLOB_TYPES: dict[int, int] = {
    T.T_STRING: 0, T.T_HASH_ZIPMAP: 0, T.T_LIST_ZIPLIST: 0, T.T_SET_INTSET: 0,
    T.T_ZSET_ZIPLIST: 0, T.T_HASH_ZIPLIST: 0, T.T_HASH_LISTPACK: 0, T.T_ZSET_LISTPACK: 0,
    T.T_SET_LISTPACK: 0, T.T_HASH_LISTPACK_EX_PRE_GA: 0, T.T_HASH_LISTPACK_EX: 8,
}
VALKEY_BLOB_TYPES = {t: p for t, p in BLOB_TYPES.items() if t != T.T_HASH_LISTPACK_EX_PRE_GA}


def skip_stream_meta(buf: bytes, pos: int, t: int) -> int:
    """Skip what follows a stream's listpack nodes (formats.md §3.7)."""
    for _ in range(3):
        _, pos = read_len(buf, pos)
    if t >= T.T_STREAM_LISTPACKS_2:
        for _ in range(5):
            _, pos = read_len(buf, pos)
    ngroups, pos = read_len(buf, pos)
    for _ in range(ngroups):
        pos = skip_string(buf, pos)
        _, pos = read_len(buf, pos)
        _, pos = read_len(buf, pos)
        if t >= T.T_STREAM_LISTPACKS_2:
            _, pos = read_len(buf, pos)
        npel, pos = read_len(buf, pos)
        for _ in range(npel):
            _, pos = read_len(buf, pos + 24)
        nconsumers, pos = read_len(buf, pos)
        for _ in range(nconsumers):
            pos = skip_string(buf, pos) + (16 if t >= T.T_STREAM_LISTPACKS_3 else 8)
            npel, pos = read_len(buf, pos)
            pos += 16 * npel
            if pos > len(buf):
                raise Short
    if t == T.T_STREAM_LISTPACKS_4:
        for _ in range(2):
            _, pos = read_len(buf, pos)
        nproducers, pos = read_len(buf, pos)
        for _ in range(nproducers):
            pos = skip_string(buf, pos)
            nentries, pos = read_len(buf, pos)
            for _ in range(nentries):
                pos = skip_string(buf, pos)
                _, pos = read_len(buf, pos)
                _, pos = read_len(buf, pos)
        for _ in range(2):
            _, pos = read_len(buf, pos)
    if pos > len(buf):
        raise Short
    return pos


def skip_value(buf: bytes, pos: int, t: int, valkey: bool) -> int:
    """Return the offset just past a value of type t starting at pos."""
    blobs = VALKEY_BLOB_TYPES if valkey else BLOB_TYPES
    prefix = blobs.get(t)
    if prefix is not None:
        return _skip_strings(buf, pos + prefix, 1)
    groups = VALKEY_GROUP_SKIP if valkey else GROUP_SKIP
    g = groups.get(t)
    if g is not None:
        prefix, fn = g
        n, pos = read_len(buf, pos + prefix)
        if fn is _g_string:
            return _skip_strings(buf, pos, n)
        if fn is _g_two_strings:
            return _skip_strings(buf, pos, 2 * n)
        if fn is _g_zset2:
            return _skip_zset2(buf, pos, n)
        if fn is _g_quicklist2:
            return _skip_quicklist2(buf, pos, n)
        for _ in range(n):
            pos = fn(buf, pos)
        if pos > len(buf):
            raise Short
        return pos
    if t in T.STREAM_TYPES:
        n, pos = read_len(buf, pos)
        pos = _skip_strings(buf, pos, 2 * n)
        return skip_stream_meta(buf, pos, t)
    if t == T.T_MODULE_2:
        _, pos = read_len(buf, pos)
        return skip_module_ops(buf, pos)
    if t == T.T_MODULE_PRE_GA:
        raise UnsupportedRdbError("module value of pre-GA type 6 cannot be skipped without its module")
    raise Malformed(f"no walker for type {t}")
