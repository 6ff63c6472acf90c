"""Big values: decode a value too large to hold as ``ValueChunk`` records, a bounded part at a time.

Collections stored element by element (hashtable-encoded sets/hashes/zsets, linked lists,
quicklist nodes, stream nodes) are decoded group by group and the consumed bytes are released,
so memory stays near one chunk. A raw string is cut into APPEND-able pieces. What is stored as
one RDB string (an LZF string, a listpack or ziplist blob) must be read whole first, then is
split. Module values cannot be split: they arrive as one last chunk.
"""

from __future__ import annotations

from collections.abc import Generator

from . import _types as T
from ._prims import SHORT, Malformed, i64_from, read_len, read_string, string_raw_len
from ._state import H, ParserState
from ._stream import node_entries, read_stream_meta
from .decode import GROUP_DECODERS, VALKEY_GROUP_DECODERS, decode_at
from .model import (
    HashValue,
    ListValue,
    SetValue,
    StreamId,
    StreamValue,
    StringValue,
    Value,
    ValueChunk,
    ZSetValue,
)

PIECE_BYTES = 1 << 20  # string piece size, and the byte budget of one chunk
Big = Generator[ValueChunk | None, None, None]



def _count(v: Value) -> int:
    if isinstance(v, SetValue):
        return len(v.members)
    if isinstance(v, StreamValue):
        return len(v.entries)
    if isinstance(v, (ListValue, ZSetValue, HashValue)):
        return len(v.items)
    return 1


def split_value(v: Value, n: int) -> list[Value]:
    """Cut a decoded value into parts of at most n elements (stream metadata on the last)."""
    if isinstance(v, ListValue):
        return [ListValue(v.items[i : i + n]) for i in range(0, len(v.items), n)] or [v]
    if isinstance(v, SetValue):
        return [SetValue(v.members[i : i + n]) for i in range(0, len(v.members), n)] or [v]
    if isinstance(v, ZSetValue):
        return [ZSetValue(v.items[i : i + n]) for i in range(0, len(v.items), n)] or [v]
    if isinstance(v, HashValue):
        parts: list[Value] = []
        for i in range(0, len(v.items), n):
            items = v.items[i : i + n]
            fe = {f: v.field_expires[f] for f, _ in items if f in v.field_expires}
            parts.append(HashValue(items, fe))
        return parts or [v]
    if isinstance(v, StreamValue):
        heads: list[Value] = [StreamValue(v.entries[i : i + n]) for i in range(0, len(v.entries) - n, n)]
        rest = len(heads) * n
        last = StreamValue(v.entries[rest:], v.length, v.last_id, v.first_id, v.max_deleted_id,
                           v.entries_added, v.groups)
        return [*heads, last]
    return [v]


def _node_entries(nodekey: bytes, lp: bytes) -> list[tuple[StreamId, list[bytes]]]:
    """A stream node read whole: a SHORT error inside it is damage, not "more bytes needed"."""
    try:
        return node_entries(nodekey, lp)
    except SHORT:
        raise Malformed("stream node listpack ends early (its entries run past its length)") from None


def big_value(p: ParserState[H], t: int, key: bytes, vstart: int) -> Big:
    assert p._table is not None and p._header is not None
    db = p._db
    if t == T.T_STRING:
        yield from _big_string(p, key, vstart, db)
        return
    groups = VALKEY_GROUP_DECODERS if p._table.valkey else GROUP_DECODERS
    g = groups.get(t)
    if g is None and t not in T.STREAM_TYPES:
        while True:  # one RDB string (or a module value): read whole, then split
            try:
                value, end = decode_at(p._buf, vstart - p._base, t, p._header)
                break
            except SHORT:
                p._wait()
                yield None
        p._pos = end
        end_offset = p._base + end
        parts = split_value(value, p.chunk_elements)
        for k, part in enumerate(parts):
            yield ValueChunk(db, key, t, part, k == len(parts) - 1, end_offset)
        return
    make, fn, has_min = g if g is not None else (lambda: StreamValue([]), None, False)
    min_expire = -1
    while True:
        try:
            i = vstart - p._base
            if has_min:
                min_expire = i64_from(p._buf, i)[0]
                i += 8
            n, i = read_len(p._buf, i)
            break
        except SHORT:
            p._wait()
            yield None
    p._pos = i
    value = make()
    mark = p._base + i
    for _ in range(n):
        while True:
            buf = p._buf
            try:
                if fn is None:
                    nodekey, j = read_string(buf, p._pos)
                    lp, j = read_string(buf, j)
                    assert isinstance(value, StreamValue)
                    value.entries.extend(_node_entries(nodekey, lp))
                else:
                    # group decoders read everything (raising when short) before they append
                    j = fn(buf, p._pos, value, min_expire)
                break
            except SHORT:
                p._wait()
                yield None
        p._pos = j
        if _count(value) >= p.chunk_elements or p._base + j - mark > PIECE_BYTES:
            parts = split_value(value, p.chunk_elements)
            value = parts.pop() if _count(parts[-1]) < p.chunk_elements else make()
            for part in parts:
                yield ValueChunk(db, key, t, part, False, p._base + j)
            mark = p._base + p._pos
    if fn is None:
        assert isinstance(value, StreamValue)
        while True:
            try:
                j = read_stream_meta(p._buf, p._pos, t, value)
                break
            except SHORT:
                value.groups.clear()
                p._wait()
                yield None
        p._pos = j
    yield ValueChunk(db, key, t, value, True, p._base + p._pos)


def _big_string(p: ParserState[H], key: bytes, vstart: int, db: int) -> Big:
    while True:
        try:
            ps, n, special = string_raw_len(p._buf, vstart - p._base)
            if special:  # LZF: decompressed whole (the format gives no way to stream it)
                data, end = read_string(p._buf, vstart - p._base)
                p._pos = end
                end_offset = p._base + end
                for k in range(0, max(len(data), 1), PIECE_BYTES):
                    last = k + PIECE_BYTES >= len(data)
                    yield ValueChunk(db, key, 0, StringValue(data[k : k + PIECE_BYTES]), last, end_offset)
                return
            break
        except SHORT:
            p._wait()
            yield None
    cur = p._base + ps
    remaining = n
    while True:
        want = min(remaining, PIECE_BYTES)
        i = cur - p._base
        if len(p._buf) - i < want:
            p._wait(cur + want)
            yield None
            continue
        data = bytes(p._buf[i : i + want])
        cur += want
        remaining -= want
        p._pos = cur - p._base
        yield ValueChunk(db, key, 0, StringValue(data), remaining == 0, cur)
        if not remaining:
            return
