"""The resumable slow path: one record cut by the end of the buffer, or a big value.

A generator per record. It yields ``None`` when it needs more bytes (after setting
``parser._need``) and resumes where it stopped: small parts (a record head, one element group)
are retried whole, collections go on group by group, so a 60 MB hash fed in 64 KiB pieces is
walked once. Offsets kept across yields are stream offsets, because ``feed()`` rebuilds the
buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from cachemigrate.errors import RdbFormatError

from . import _types as T
from ._bigkey import big_value
from ._opcodes import Pending, read_key_prefix, read_opcode_record
from ._prims import SHORT, Malformed, Short, read_len, read_string, skip_string, string_raw_len
from ._raw import raw_value, raw_walkable
from ._skip import (
    BLOB_TYPES,
    GROUP_SKIP,
    VALKEY_BLOB_TYPES,
    VALKEY_GROUP_SKIP,
    GroupSkip,
    skip_groups,
    skip_stream_meta,
    skip_value,
)
from ._state import H, ParserState
from .model import KeyRecord, Record, SelectDb

_BIG = -1
_ACCUMULATE_AT = 1 << 20
_PREFIX_OPS = (T.OP_EXPIRETIME_MS, T.OP_EXPIRETIME, T.OP_IDLE, T.OP_FREQ)
_ERRORS = (Malformed, RdbFormatError, ValueError, OverflowError, struct.error)

KeyHead = tuple[int, bytes, int, int | None, int | None, bytes | None, int]
Slow = Generator[Record | None, None, None]


def read_key_head(buf: bytes, pos: int, table: T.TypeTable, pend: Pending | None) -> KeyHead:
    """Prefix opcodes, type byte and key: (type, key, expire_ms, idle, freq, key_meta, value_pos).

    When another opcode follows the prefix opcodes, the type is that opcode, the key is empty
    and value_pos is the opcode's position: the prefix then waits for the next key.
    """
    t, expire, idle, freq, meta, pos = read_key_prefix(buf, pos, table, pend)
    if t not in table.types:
        return t, b"", expire, idle, freq, meta, pos
    key, pos = read_string(buf, pos + 1)
    return t, bytes(key), expire, idle, freq, meta, pos


def slow_record(p: ParserState[H], start: int) -> Slow:
    table = p._table
    assert table is not None
    op = -1
    while True:
        buf = p._buf
        i = start - p._base
        try:
            op = buf[i]
            if op == T.OP_EOF:
                yield p._end(buf, i)
                return
            if op not in table.types and op not in _PREFIX_OPS and not (
                op == T.OP_KEY_META_OR_SLOT_IMPORT and table.key_meta
            ):
                orec, j = read_opcode_record(buf, i, op, table)
                if j > len(buf):
                    raise Short
                p._pos = j
                if orec is not None:
                    orec.offset = start
                    if type(orec) is SelectDb:
                        p._db = orec.db
                    yield orec
                return
            head = read_key_head(buf, i, table, p._pend)
            if head[0] not in table.types:
                p._pend = head[2:6]
                p._pos = head[6]
                return
            break
        except SHORT:
            p._wait()
            yield None
        except _ERRORS as exc:
            raise p._fail(exc, start, None, op) from None
    t, key, expire, idle, freq, meta, vi = head
    p._pend = None  # the key head is read: from here on the slow path only goes forward
    vstart = p._base + vi
    try:
        end = yield from _walk(p, t, vstart)
    except _ERRORS as exc:
        raise p._fail(exc, start, key, t) from None
    if end != _BIG and end - vstart > p.max_value_bytes:
        end = _BIG
    if end != _BIG:
        buf = p._buf
        ei = end - p._base
        value = bytes(buf[vstart - p._base : ei])
        p._drop_to(ei)
        yield KeyRecord(db=p._db, key=key, type_byte=t, value=value, expire_ms=expire, idle=idle, freq=freq,
                        offset=start, end_offset=end, key_meta=meta)
        return
    p._drop_to(vstart - p._base)
    rec = KeyRecord(db=p._db, key=key, type_byte=t, value=b"", expire_ms=expire, idle=idle, freq=freq,
                    offset=start, end_offset=vstart, big=True, key_meta=meta)
    hook = p.raw_hook
    rec.raw = hook is not None and raw_walkable(t, table.valkey) and hook(rec)
    yield rec
    try:
        yield from raw_value(p, t, key, vstart) if rec.raw else big_value(p, t, key, vstart)
    except _ERRORS as exc:
        # The record's offset, as for any other value: an error names the same offset however the
        # file was split into reads (whole in memory, a value walked whole or in chunks).
        raise p._fail(exc, start, key, t) from None


def _walk(p: ParserState[H], t: int, vstart: int) -> Generator[None, None, int]:
    """Walk the value at stream offset vstart; its end offset, or _BIG when over the bound."""
    table = p._table
    assert table is not None
    prefix = (VALKEY_BLOB_TYPES if table.valkey else BLOB_TYPES).get(t)
    if prefix is not None:
        return (yield from _walk_blob(p, t, vstart + prefix))
    group = (VALKEY_GROUP_SKIP if table.valkey else GROUP_SKIP).get(t)
    is_stream = t in T.STREAM_TYPES
    if group is None and not is_stream:
        while True:  # modules and the like: retried whole
            try:
                return p._base + skip_value(p._buf, vstart - p._base, t, table.valkey)
            except SHORT:
                p._wait()
                yield None
    try:  # usually the whole value is there already: walk it at full speed
        return p._base + skip_value(p._buf, vstart - p._base, t, table.valkey)
    except SHORT:
        pass
    skip_prefix, fn = group if group is not None else (0, _two_strings)
    while True:
        try:
            n, i = read_len(p._buf, vstart - p._base + skip_prefix)
            cur = p._base + i
            break
        except SHORT:
            p._wait()
            yield None
    cur = yield from _walk_groups(p, fn, n, cur, vstart)
    if cur == _BIG or not is_stream:
        return cur
    while True:
        try:
            return p._base + skip_stream_meta(p._buf, cur - p._base, t)
        except SHORT:
            p._wait()
            yield None


def _walk_blob(p: ParserState[H], t: int, at: int) -> Generator[None, None, int]:
    """One RDB string at stream offset ``at``; a raw string over the bound is big at once."""
    while True:
        buf = p._buf
        i = at - p._base
        try:
            return p._base + skip_string(buf, i)
        except SHORT:
            need = None
            try:
                ps, n, special = string_raw_len(buf, i)
                if not special:
                    if t == T.T_STRING and n > p.max_value_bytes:
                        return _BIG
                    need = p._base + ps + n
            except SHORT:
                pass
            p._wait(need)
            yield None


def _walk_groups(
    p: ParserState[H], fn: GroupSkip, n: int, cur: int, vstart: int
) -> Generator[None, None, int]:
    maxv = p.max_value_bytes
    while n:
        while True:
            buf = p._buf
            try:
                j, done = skip_groups(buf, cur - p._base, fn, n)
                cur = p._base + j
                n -= done
                break
            except SHORT:
                if p._acc is None and p._base + len(buf) - vstart > _ACCUMULATE_AT:
                    p._start_accumulating()
                p._wait()
                yield None
        if cur - vstart > maxv:
            return _BIG
    return cur


def _two_strings(buf: bytes, pos: int) -> int:
    return skip_string(buf, skip_string(buf, pos))
