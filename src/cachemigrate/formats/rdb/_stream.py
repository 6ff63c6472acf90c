"""Stream values (types 15/19/21/26, formats.md §3.7): listpack nodes and the metadata after them."""

from __future__ import annotations

from . import _types as T
from ._blobs import listpack_items
from ._prims import STREAM_ID, Malformed, i64_from, read_len, read_string, skip_string
from .model import StreamConsumer, StreamGroup, StreamId, StreamPending, StreamValue

_DELETED = 1
_SAMEFIELDS = 2


def _b(v: bytes | int) -> bytes:
    return v if isinstance(v, bytes) else b"%d" % v


def _i(v: bytes | int) -> int:
    if isinstance(v, int):
        return v
    try:
        return int(v)
    except ValueError:
        raise Malformed(f"stream node: expected an integer, found {v[:32]!r}") from None


def node_entries(nodekey: bytes, lp: bytes) -> list[tuple[StreamId, list[bytes]]]:
    """The live entries of one stream listpack node, in order."""
    if len(nodekey) != 16:
        raise Malformed(f"stream node key of {len(nodekey)} bytes, expected 16")
    master_ms, master_seq = STREAM_ID.unpack(nodekey)
    items = listpack_items(lp, ints=True)
    try:
        count = _i(items[0])
        deleted = _i(items[1])
        nmaster = _i(items[2])
        master_fields = [_b(f) for f in items[3 : 3 + nmaster]]
        if len(master_fields) != nmaster or _i(items[3 + nmaster]) != 0:
            raise Malformed("stream node master entry is malformed")
        i = 4 + nmaster
        out: list[tuple[StreamId, list[bytes]]] = []
        for _ in range(count + deleted):
            flags = _i(items[i])
            ms = master_ms + _i(items[i + 1])
            seq = master_seq + _i(items[i + 2])
            i += 3
            if flags & _SAMEFIELDS:
                values = items[i : i + nmaster]
                i += nmaster
                fv: list[bytes] = []
                for f, v in zip(master_fields, values, strict=True):
                    fv.append(f)
                    fv.append(_b(v))
            else:
                nf = _i(items[i])
                fv = [_b(x) for x in items[i + 1 : i + 1 + 2 * nf]]
                if len(fv) != 2 * nf:
                    raise Malformed("stream entry runs past its node")
                i += 1 + 2 * nf
            i += 1  # lp-count
            if not flags & _DELETED:
                out.append(((ms, seq), fv))
        if i != len(items):
            raise Malformed(f"stream node has {len(items) - i} items after its last entry")
        return out
    except (IndexError, ValueError) as exc:
        raise Malformed(f"stream node is malformed: {exc}") from None


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _id(buf: bytes, pos: int) -> tuple[StreamId, int]:
    ms, pos = read_len(buf, pos)
    seq, pos = read_len(buf, pos)
    return (ms, seq), pos


def read_stream_meta(buf: bytes, pos: int, t: int, value: StreamValue) -> int:
    """Fill ``value``'s metadata and groups from what follows the nodes; returns the end."""
    value.length, pos = read_len(buf, pos)
    value.last_id, pos = _id(buf, pos)
    v2 = t >= T.T_STREAM_LISTPACKS_2
    if v2:
        value.first_id, pos = _id(buf, pos)
        value.max_deleted_id, pos = _id(buf, pos)
        value.entries_added, pos = read_len(buf, pos)
    ngroups, pos = read_len(buf, pos)
    for _ in range(ngroups):
        name, pos = read_string(buf, pos)
        last_id, pos = _id(buf, pos)
        entries_read: int | None = None
        if v2:
            er, pos = read_len(buf, pos)
            er = _signed(er)
            entries_read = None if er < 0 else er
        npel, pos = read_len(buf, pos)
        pending: list[StreamPending] = []
        for _ in range(npel):
            if pos + 24 > len(buf):
                raise IndexError
            sid = STREAM_ID.unpack_from(buf, pos)
            dtime = i64_from(buf, pos + 16)[0]
            count, pos = read_len(buf, pos + 24)
            pending.append(StreamPending(sid, dtime, count))
        nconsumers, pos = read_len(buf, pos)
        consumers: list[StreamConsumer] = []
        for _ in range(nconsumers):
            cname, pos = read_string(buf, pos)
            seen = i64_from(buf, pos)[0]
            pos += 8
            active: int | None = None
            if t >= T.T_STREAM_LISTPACKS_3:
                active = i64_from(buf, pos)[0]
                pos += 8
            cpel, pos = read_len(buf, pos)
            if pos + 16 * cpel > len(buf):
                raise IndexError
            ids = [STREAM_ID.unpack_from(buf, pos + 16 * k) for k in range(cpel)]
            pos += 16 * cpel
            consumers.append(StreamConsumer(cname, seen, active, ids))
        value.groups.append(StreamGroup(name, last_id, entries_read, pending, consumers))
    if t == T.T_STREAM_LISTPACKS_4:
        # IDMP (idempotent producers, Redis 8.6): not part of our value model; read over it.
        _, pos = read_len(buf, pos)
        _, pos = read_len(buf, pos)
        nprod, pos = read_len(buf, pos)
        for _ in range(nprod):
            pos = skip_string(buf, pos)
            nent, pos = read_len(buf, pos)
            for _ in range(nent):
                pos = skip_string(buf, pos)
                _, pos = _id(buf, pos)
        _, pos = read_len(buf, pos)
        _, pos = read_len(buf, pos)
    if pos > len(buf):
        raise IndexError
    return pos


def decode_stream(buf: bytes, pos: int, t: int) -> tuple[StreamValue, int]:
    n, pos = read_len(buf, pos)
    value = StreamValue([])
    for _ in range(n):
        nodekey, pos = read_string(buf, pos)
        lp, pos = read_string(buf, pos)
        value.entries.extend(node_entries(nodekey, lp))
    pos = read_stream_meta(buf, pos, t, value)
    return value, pos
