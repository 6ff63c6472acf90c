"""Non-key records: AUX, SELECTDB, RESIZEDB, SLOT_INFO, FUNCTION2, MODULE_AUX, and the
per-key prefix opcodes. Each reader is all-or-nothing over ``(buf, pos)``: a short buffer raises,
and the caller retries the whole record once more bytes arrive.
"""

from __future__ import annotations

from cachemigrate.errors import UnsupportedRdbError

from . import _types as T
from ._prims import I32, Malformed, Short, i64_from, read_len, read_string, skip_module_ops, skip_string
from .model import Aux, Function, ModuleAux, ResizeDb, SelectDb, SlotInfo

OpRecord = Aux | SelectDb | ResizeDb | SlotInfo | Function | ModuleAux


def read_opcode_record(buf: bytes, pos: int, op: int, table: T.TypeTable) -> tuple[OpRecord | None, int]:
    """Read the record of a non-key opcode at pos (the opcode byte). None: nothing to yield."""
    p = pos + 1
    if op == T.OP_AUX:
        k, p = read_string(buf, p)
        v, p = read_string(buf, p)
        return Aux(k, v), p
    if op == T.OP_SELECTDB:
        db, p = read_len(buf, p)
        return SelectDb(db), p
    if op == T.OP_RESIZEDB:
        a, p = read_len(buf, p)
        b, p = read_len(buf, p)
        return ResizeDb(a, b), p
    if op == T.OP_SLOT_INFO:
        slot, p = read_len(buf, p)
        size, p = read_len(buf, p)
        exp, p = read_len(buf, p)
        return SlotInfo(slot, size, exp), p
    if op == T.OP_FUNCTION2:
        code, p = read_string(buf, p)
        return Function(code), p
    if op == T.OP_MODULE_AUX:
        from ._prims import module_name

        mid, p = read_len(buf, p)
        when_op, p = read_len(buf, p)
        if when_op != 2:
            raise Malformed(f"MODULE_AUX 'when' opcode is {when_op}, expected 2 (UINT)")
        when, p = read_len(buf, p)
        raw_start = p
        p = skip_module_ops(buf, p)
        return ModuleAux(module_name(mid), mid, when, buf[raw_start:p]), p
    if op == T.OP_KEY_META_OR_SLOT_IMPORT and table.slot_import:
        # Valkey 9 atomic slot migration state: job name, then (start, end) slot ranges.
        # Cluster bookkeeping of the source, not data: read over it.
        p = skip_string(buf, p)
        n, p = read_len(buf, p)
        for _ in range(2 * n):
            _, p = read_len(buf, p)
        return None, p
    if op == T.OP_FUNCTION_PRE_GA:
        # Redis 7.0 release candidates: name, engine, has_desc, [desc], code. Redis 7.0.15 still
        # loads it (checked on the corpus) and turns it into "#!<ENGINE> name=<name>\n<code>",
        # which is what FUNCTION LOAD takes; we do the same. The description is dropped, as there.
        name, p = read_string(buf, p)
        engine, p = read_string(buf, p)
        has_desc, p = read_len(buf, p)
        if has_desc:
            p = skip_string(buf, p)
        code, p = read_string(buf, p)
        return Function(b"#!" + engine + b" name=" + name + b"\n" + code), p
    raise UnsupportedRdbError(f"unknown RDB opcode {op} (vendor extension?)")


Pending = tuple[int, int | None, int | None, bytes | None]
"""(expire_ms, idle, freq, key_meta) read before a key's type byte."""

KeyPrefix = tuple[int, int, int | None, int | None, bytes | None, int]
"""(type byte or the next opcode, expire_ms, idle, freq, key_meta, its position)."""


def read_key_prefix(buf: bytes, pos: int, table: T.TypeTable, pend: Pending | None) -> KeyPrefix:
    """The prefix opcodes at pos (expire, LRU idle, LFU freq, KEY_META), on top of ``pend``.

    Stops at the key's type byte, or at another opcode (KeyDB puts an AUX there): like Redis, the
    prefix then waits for the next key. The fast path calls this only for keys with a prefix: the
    call costs less than the noise (pure-Python reader, 200k keys, 30% with a TTL: 4.02-4.22
    us a key with the call, 3.74-4.19 with the loop inlined there).
    """
    expire, idle, freq, meta = pend if pend is not None else (-1, None, None, None)
    types = table.types
    t = buf[pos]
    while t not in types:
        if t == T.OP_EXPIRETIME_MS:
            expire = i64_from(buf, pos + 1)[0]
            pos += 9
        elif t == T.OP_EXPIRETIME:
            expire = I32.unpack_from(buf, pos + 1)[0] * 1000
            pos += 5
        elif t == T.OP_IDLE:
            idle, pos = read_len(buf, pos + 1)
        elif t == T.OP_FREQ:
            freq = buf[pos + 1]
            pos += 2
        elif t == T.OP_KEY_META_OR_SLOT_IMPORT and table.key_meta:
            p = skip_key_meta(buf, pos + 1)
            meta = bytes(buf[pos + 1 : p])
            pos = p
        else:
            break
        t = buf[pos]
    return t, expire, idle, freq, meta, pos


def skip_key_meta(buf: bytes, pos: int) -> int:
    """Redis 13 KEY_META body (after the opcode): n x (4-byte class spec + module opcodes)."""
    n, pos = read_len(buf, pos)
    for _ in range(n):
        pos = skip_module_ops(buf, pos + 4)
    if pos > len(buf):
        raise Short
    return pos
