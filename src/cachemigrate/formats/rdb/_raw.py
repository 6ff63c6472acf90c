"""Big values as their bytes: a value too large to hold, walked and handed on as ``RawChunk``
records, a bounded part at a time (``KeyRecord.raw``; the consumer streams them into a RESTORE).

The walk only finds where the value ends: a string (or a value stored as one RDB string) is
passed on as it is buffered; a collection is walked element group by element group
(``_skip.skip_groups``, in C when built), a stream's metadata is retried whole. Bytes walked are
released as they are passed on, so memory stays near one read plus one element group.
"""

from __future__ import annotations

from collections.abc import Generator

from . import _types as T
from ._prims import SHORT, read_len, skip_string
from ._skip import (
    BLOB_TYPES,
    GROUP_SKIP,
    VALKEY_BLOB_TYPES,
    VALKEY_GROUP_SKIP,
    _g_two_strings,
    skip_groups,
    skip_stream_meta,
)
from ._state import H, ParserState
from .model import RawChunk

PIECE_BYTES = 1 << 20  # the largest RawChunk
_MIN_PIECE = 64 << 10  # smaller walked parts wait for more (a record cut often is cut mid-group)
_ACCUMULATE_AT = 1 << 20

Raw = Generator[RawChunk | None, None, None]


def raw_walkable(t: int, valkey: bool) -> bool:
    """Whether a value of type byte ``t`` can be walked as bytes (modules cannot)."""
    blobs = VALKEY_BLOB_TYPES if valkey else BLOB_TYPES
    groups = VALKEY_GROUP_SKIP if valkey else GROUP_SKIP
    return t in blobs or t in groups or t in T.STREAM_TYPES


def _string_end(buf: bytes, i: int) -> int:
    """The index just past the RDB string whose header is at i (its bytes need not be buffered)."""
    b = buf[i]
    if b >> 6 == 3:
        if b & 0x3F == 3:  # LZF: compressed length, raw length, compressed bytes
            clen, j = read_len(buf, i + 1)
            _, j = read_len(buf, j)
            return j + clen
        return skip_string(buf, i)  # an integer: a few bytes
    n, j = read_len(buf, i)
    return j + n


class _Out:
    """What of the value went out: its bytes up to ``emitted`` (a stream offset) are released."""

    __slots__ = ("emitted", "key", "p")

    def __init__(self, p: ParserState[H], key: bytes, vstart: int) -> None:
        self.p: ParserState[H] = p
        self.key = key
        self.emitted = vstart

    def pieces(self, upto: int, last: bool) -> list[RawChunk]:
        p = self.p
        buf, base = p._buf, p._base
        out = []
        a = self.emitted
        while a < upto:
            b = min(upto, a + PIECE_BYTES)
            out.append(RawChunk(self.key, bytes(buf[a - base : b - base]), last and b == upto, b))
            a = b
        if not out and last:
            out.append(RawChunk(self.key, b"", True, upto))
        p._drop_to(upto - base)
        self.emitted = upto
        return out


def raw_value(p: ParserState[H], t: int, key: bytes, vstart: int) -> Raw:
    """The value of type ``t`` at stream offset ``vstart`` as ``RawChunk`` records, the last
    ending exactly where the value ends."""
    table = p._table
    assert table is not None
    out = _Out(p, key, vstart)
    prefix = (VALKEY_BLOB_TYPES if table.valkey else BLOB_TYPES).get(t)
    if prefix is not None:
        yield from _raw_blob(p, out, vstart + prefix)
        return
    group = (VALKEY_GROUP_SKIP if table.valkey else GROUP_SKIP).get(t)
    skip_prefix, fn = group if group is not None else (0, _g_two_strings)  # streams: their nodes
    while True:
        try:
            n, i = read_len(p._buf, vstart - p._base + skip_prefix)
            cur = p._base + i
            break
        except SHORT:
            p._wait()
            yield None
    while n:
        try:
            j, done = skip_groups(p._buf, cur - p._base, fn, n)
        except SHORT:
            if cur - out.emitted >= _MIN_PIECE:
                yield from out.pieces(cur, False)
            elif p._acc is None and p._base + len(p._buf) - cur > _ACCUMULATE_AT:
                p._start_accumulating()  # one group larger than a read: append in place
            p._wait()
            yield None
            continue
        cur = p._base + j
        n -= done
        if cur - out.emitted >= PIECE_BYTES:
            yield from out.pieces(cur, False)
    while t in T.STREAM_TYPES:
        try:
            cur = p._base + skip_stream_meta(p._buf, cur - p._base, t)
            break
        except SHORT:
            p._wait()
            yield None
    yield from out.pieces(cur, True)


def _raw_blob(p: ParserState[H], out: _Out, at: int) -> Raw:
    """One RDB string at stream offset ``at`` (its end is in its header): passed on as buffered."""
    while True:
        try:
            end = p._base + _string_end(p._buf, at - p._base)
            break
        except SHORT:
            p._wait()
            yield None
    while True:
        have = min(end, p._base + len(p._buf))
        if have == end or have - out.emitted >= _MIN_PIECE:
            yield from out.pieces(have, have == end)
            if have == end:
                return
        p._wait(min(end, p._base + len(p._buf) + 1))
        yield None
