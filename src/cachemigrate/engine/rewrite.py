"""Decoded values as plain commands, for targets that cannot RESTORE the source's encoding.

Each function returns argv lists for one key (or one part of a big key). Collections are sent in
commands of at most ``chunk_elements`` elements and about ``chunk_bytes`` bytes. Streams are
replayed the way librdb does (corpus ``librdb/stream_v11_target_ver_*.resp``): XADD per entry,
XSETID, XGROUP CREATE per group, XCLAIM ... JUSTID FORCE per pending entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cachemigrate.engine.entry import Arg
from cachemigrate.formats.rdb.model import (
    HashValue,
    ListValue,
    SetValue,
    StreamGroup,
    StreamId,
    StreamValue,
    StringValue,
    Value,
    ZSetValue,
)

Argv = list[Arg]

_MAX_ENTRIES_READ = 1 << 63  # RDB stores "unknown" (-1) as an unsigned 64-bit length


@dataclass(frozen=True, slots=True)
class RewriteCaps:
    """What the target's command set allows, and how big one command may get."""

    field_ttl: bool = False  # HPEXPIREAT (Redis 7.4+, Valkey 9+)
    stream_v7: bool = True  # XSETID ENTRIESADDED/MAXDELETEDID, XGROUP CREATE ENTRIESREAD (7.0+)
    create_consumer: bool = True  # XGROUP CREATECONSUMER (6.2+)
    chunk_elements: int = 1000
    chunk_bytes: int = 1 << 20


@dataclass(slots=True)
class Outcome:
    """The commands for one value (or part of one), and what the transformer must report."""

    commands: list[Argv] = field(default_factory=list)
    expired_fields: int = 0  # fields already past their TTL: left out, as a loading master does
    dropped_ttls: int = 0  # fields written without their TTL (target has no field TTLs)
    lost_pending: int = 0  # PEL entries whose stream entry is gone: XCLAIM cannot rebuild them


def format_id(sid: StreamId) -> bytes:
    return b"%d-%d" % sid


def format_score(score: float) -> bytes:
    """The shortest text that parses back (strtod) to exactly ``score``: "0.1", "inf", "-0.0"."""
    return repr(score).encode()


def batched(head: Argv, groups: Iterable[Sequence[Arg]], caps: RewriteCaps) -> list[Argv]:
    """``head`` + groups of arguments, split into commands bounded by element count and bytes."""
    out: list[Argv] = []
    argv: Argv = []
    n = size = 0
    max_n, max_bytes = caps.chunk_elements, caps.chunk_bytes
    for group in groups:
        gsize = 0
        for a in group:
            gsize += len(a)
        if not out or n >= max_n or (n and size + gsize > max_bytes):
            argv = [*head]
            out.append(argv)
            n = size = 0
        argv.extend(group)
        n += 1
        size += gsize
    return out


def is_empty(value: Value) -> bool:
    """A collection without elements (streams may be empty: they keep IDs and groups)."""
    if isinstance(value, ListValue | ZSetValue | HashValue):
        return not value.items
    if isinstance(value, SetValue):
        return not value.members
    return False


def value_commands(
    key: bytes,
    value: Value,
    caps: RewriteCaps,
    now_ms: Callable[[], int],
    *,
    part: int = 0,
    last: bool = True,
    stream_entries_before: int = 0,
    first_entry: StreamId | None = None,
) -> Outcome:
    """Commands that rebuild ``value`` (part ``part`` of a big key when ``last`` is False or
    ``part`` > 0). Module values have none: only RESTORE moves them."""
    if isinstance(value, StringValue):
        return Outcome([[b"SET" if part == 0 else b"APPEND", key, value.data]])
    if isinstance(value, ListValue):
        return Outcome(list_commands(key, value.items, caps))
    if isinstance(value, SetValue):
        return Outcome(set_commands(key, value.members, caps))
    if isinstance(value, ZSetValue):
        return Outcome(zset_commands(key, value, caps))
    if isinstance(value, HashValue):
        return hash_commands(key, value, caps, now_ms() if value.field_expires else 0)
    if isinstance(value, StreamValue):
        out = Outcome(stream_entry_commands(key, value))
        if last:
            n = stream_entries_before + len(value.entries)
            if first_entry is None and value.entries:
                first_entry = value.entries[0][0]
            out.commands += stream_meta_commands(key, value, caps, n_entries=n, first_entry=first_entry)
            if part == 0:
                out.lost_pending = pending_without_entry(value)
        return out
    raise TypeError(f"no command rewrite for {type(value).__name__}")


def list_commands(key: bytes, items: Sequence[bytes], caps: RewriteCaps) -> list[Argv]:
    return batched([b"RPUSH", key], ((x,) for x in items), caps)


def set_commands(key: bytes, members: Sequence[bytes], caps: RewriteCaps) -> list[Argv]:
    return batched([b"SADD", key], ((x,) for x in members), caps)


def zset_commands(key: bytes, value: ZSetValue, caps: RewriteCaps) -> list[Argv]:
    return batched([b"ZADD", key], ((format_score(s), m) for m, s in value.items), caps)


def hash_commands(key: bytes, value: HashValue, caps: RewriteCaps, now_ms: int) -> Outcome:
    out = Outcome()
    expires = value.field_expires
    if not expires:
        out.commands = batched([b"HSET", key], value.items, caps)
        return out
    live: list[tuple[bytes, bytes]] = []
    by_time: dict[int, list[bytes]] = {}
    for f, v in value.items:
        at = expires.get(f)
        if at is not None:
            if at < now_ms:
                out.expired_fields += 1
                continue
            if caps.field_ttl:
                by_time.setdefault(at, []).append(f)
            else:
                out.dropped_ttls += 1
        live.append((f, v))
    out.commands = batched([b"HSET", key], live, caps)
    for at, fields in by_time.items():
        for i in range(0, len(fields), caps.chunk_elements):
            part = fields[i : i + caps.chunk_elements]
            out.commands.append([b"HPEXPIREAT", key, b"%d" % at, b"FIELDS", b"%d" % len(part), *part])
    return out


def stream_entry_commands(key: bytes, value: StreamValue) -> list[Argv]:
    return [[b"XADD", key, format_id(sid), *fields] for sid, fields in value.entries]


def stream_meta_commands(
    key: bytes,
    value: StreamValue,
    caps: RewriteCaps,
    *,
    n_entries: int,
    first_entry: StreamId | None,
) -> list[Argv]:
    """What follows the XADDs (``n_entries`` of them, the first with ID ``first_entry``): create
    an empty stream if needed, XSETID, groups, PELs."""
    out: list[Argv] = []
    if not n_entries:
        # librdb's trick: MKSTREAM through a throwaway group (no XADD+XDEL, which would move
        # the stream's IDs; no MAXLEN 0, which CRDT targets refuse).
        out.append([b"XGROUP", b"CREATE", key, b"dummyCG", b"$", b"MKSTREAM"])
        out.append([b"XGROUP", b"DESTROY", key, b"dummyCG"])
    xsetid: Argv = [b"XSETID", key, format_id(value.last_id)]
    added, max_deleted = value.entries_added, value.max_deleted_id or (0, 0)
    rdb9 = added is None  # no counters: a 7.0+ server derives them when it loads such a stream
    if caps.stream_v7:
        if added is None:
            added, max_deleted = max(value.length, n_entries), (0, 0)
        xsetid += [b"ENTRIESADDED", b"%d" % added, b"MAXDELETEDID", format_id(max_deleted)]
    out.append(xsetid)
    first = value.first_id or first_entry
    for group in value.groups:
        read = group.entries_read  # None: unknown (RDB 10+ says so), or not stored (RDB 9)
        if read is None and rdb9 and added is not None:
            read = _estimate_entries_read(value, added, max_deleted, first, group.last_id)
        out.extend(_group_commands(key, group, caps, read))
    return out


def _estimate_entries_read(
    value: StreamValue, added: int, max_deleted: StreamId, first: StreamId | None, gid: StreamId
) -> int | None:
    """Redis's streamEstimateDistanceFromFirstEverEntry(), which a 7.0+ server runs for each group
    of an RDB 9 stream it loads. None: unknowable."""
    if not added:
        return 0
    if not value.length and gid <= value.last_id:
        return added
    if gid == value.last_id:
        return added
    if gid > value.last_id or first is None:
        return None
    if max_deleted == (0, 0) or max_deleted < first:
        if gid < first:
            return added - value.length
        if gid == first:
            return added - value.length + 1
    return None


def pending_without_entry(value: StreamValue) -> int:
    """Pending entries whose stream entry is gone (XDEL after delivery): XCLAIM skips them."""
    if not value.groups:
        return 0
    ids = {sid for sid, _ in value.entries}
    return sum(1 for g in value.groups for p in g.pending if p.id not in ids)


def _group_commands(key: bytes, group: StreamGroup, caps: RewriteCaps, read: int | None) -> list[Argv]:
    create: Argv = [b"XGROUP", b"CREATE", key, group.name, format_id(group.last_id)]
    if caps.stream_v7 and read is not None and 0 <= read < _MAX_ENTRIES_READ:
        create += [b"ENTRIESREAD", b"%d" % read]
    out: list[Argv] = [create]
    pel = {p.id: p for p in group.pending}
    for consumer in group.consumers:
        if not consumer.pending:
            if caps.create_consumer:
                out.append([b"XGROUP", b"CREATECONSUMER", key, group.name, consumer.name])
            continue
        for sid in consumer.pending:
            nack = pel.get(sid)
            time_ms, count = (nack.delivery_time, nack.delivery_count) if nack else (0, 1)
            out.append(
                [
                    b"XCLAIM", key, group.name, consumer.name, b"0", format_id(sid),
                    b"TIME", b"%d" % time_ms, b"RETRYCOUNT", b"%d" % count, b"JUSTID", b"FORCE",
                ]
            )  # fmt: skip
    return out
