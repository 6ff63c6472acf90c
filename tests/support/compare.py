"""Key-by-key comparison of servers for tests: every db, type, value, TTL (with a tolerance).

A side is a list of redis-py clients whose keys are merged: one client for a standalone server,
one per master for a cluster (``cluster_nodes()``). Values are read per type: strings, lists,
sets, sorted sets (with scores), hashes, streams (entries; length, last id, max deleted id and
entries added; each group's last delivered id, entries read and pending count, its consumers
with their pending counts, and its pending entries with owner and delivery count — delivery
times and idle times are not compared). Stream fields only one side reports (a Redis 6 has no
entries-added) are left out. Keys starting with one of ``ignore`` (default: the offset marker the
migration keeps in the target) are left out on both sides.

Written apart from ``cachemigrate.engine.compare`` on purpose (other commands, other code): a
migration is judged by this module, and the product's comparison is itself under test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cachemigrate.engine.exactly_once import MARKER_PREFIX

Side = Sequence[redis.Redis]
KeyState = tuple[str, Any, int]  # type, value, absolute expiry in unix ms (-1: none)
IGNORED: tuple[bytes, ...] = (MARKER_PREFIX,)


@dataclass
class Comparison:
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, limit: int = 20) -> str:
        head = f"{self.compared} keys, {len(self.mismatches)} mismatches: "
        return head + "; ".join(self.mismatches[:limit])


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _queue_value(p: Any, key: bytes, t: str) -> int:
    """Queue the commands that read a value; return how many replies they produce."""
    if t == "string":
        p.get(key)
    elif t == "list":
        p.lrange(key, 0, -1)
    elif t == "set":
        p.smembers(key)
    elif t == "zset":
        p.zrange(key, 0, -1, withscores=True)
    elif t == "hash":
        p.hgetall(key)
    elif t == "stream":
        p.xrange(key, "-", "+")
        p.xinfo_stream(key)
        p.xinfo_groups(key)
        return 3
    else:
        p.dump(key)  # module types: compare the serialized value
    return 1


class Fields:
    """Named fields of a stream or a group; a field only one side has (an older server) is not
    compared."""

    __slots__ = ("items",)

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fields):
            return NotImplemented
        return all(self.items[k] == other.items[k] for k in self.items.keys() & other.items.keys())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Fields({self.items!r})"


STREAM_FIELDS = ("length", "last-generated-id", "max-deleted-entry-id", "entries-added")
GROUP_FIELDS = ("last-delivered-id", "entries-read", "pending", "consumers")
PEL_MAX = 1_000_000


def _fields(info: dict[Any, Any], names: Sequence[str]) -> Fields:
    info = {_s(k): v for k, v in info.items()}
    return Fields({n: _s(info[n]) if isinstance(info[n], bytes) else info[n] for n in names if n in info})


def _normal(t: str, raw: list[Any]) -> Any:
    if t == "set":
        return sorted(raw[0])
    if t == "hash":
        return sorted(raw[0].items())
    if t == "stream":
        entries, info, groups = raw
        return [entries, _fields(info, STREAM_FIELDS), groups]
    return raw[0]


def _stream_groups(c: redis.Redis, key: bytes, groups: list[dict[Any, Any]]) -> list[Any]:
    """Each group with its consumers (name, pending) and pending entries (id, owner, deliveries)."""
    names = sorted(_s(g["name"]) for g in groups)
    p = c.pipeline(transaction=False)
    for name in names:
        p.xinfo_consumers(key, name)
        p.xpending_range(key, name, min="-", max="+", count=PEL_MAX)
    replies = p.execute()
    by_name = {_s(g["name"]): g for g in groups}
    out = []
    for i, name in enumerate(names):
        consumers, pel = replies[2 * i], replies[2 * i + 1]
        out.append((
            name,
            _fields(by_name[name], GROUP_FIELDS),
            sorted((_s(x["name"]), x["pending"]) for x in consumers),
            [(_s(e["message_id"]), _s(e["consumer"]), e["times_delivered"]) for e in pel],
        ))
    return out


def _read_keys(c: redis.Redis, keys: list[bytes]) -> list[KeyState | None]:
    p = c.pipeline(transaction=False)
    for k in keys:
        p.type(k)
    types = [_s(t) for t in p.execute()]
    # Expire times are absolute and the server's own: PEXPIRETIME (7.0+), else PTTL counted from
    # the server's TIME right after it. Never our clock after the replies: a stalled test process
    # (a loaded machine) would shift every TTL of the batch by the stall.
    absolute = _has_pexpiretime(c)
    p = c.pipeline(transaction=False)
    counts = []
    for k, t in zip(keys, types, strict=True):
        counts.append(_queue_value(p, k, t) if t != "none" else 0)
        if absolute:
            p.execute_command("PEXPIRETIME", k)
        else:
            p.pttl(k)
            p.time()
    replies = p.execute(raise_on_error=False)
    out: list[KeyState | None] = []
    i = 0
    for t, n in zip(types, counts, strict=True):
        raw, when = replies[i : i + n], int(replies[i + n])
        base = 0
        if not absolute:
            base = replies[i + n + 1][0] * 1000 + replies[i + n + 1][1] // 1000
            i += 1
        i += n + 1
        if t == "none" or when == -2 or any(isinstance(r, Exception) for r in raw):
            out.append(None)  # deleted or changed type while we read it
            continue
        # Absolute, so that the time a comparison takes does not count as TTL drift.
        out.append((t, _normal(t, raw), -1 if when < 0 else base + when))
    for j, (key, state) in enumerate(zip(keys, out, strict=True)):
        if state is not None and state[0] == "stream":
            try:
                state[1][2] = _stream_groups(c, key, state[1][2])
            except redis.ResponseError:  # deleted or changed type while we read it
                out[j] = None
    return out


def expire_at(c: redis.Redis, key: bytes) -> int:
    """A key's absolute expire time in unix ms as the server has it (-1: none, -2: no key):
    PEXPIRETIME, or PTTL with the server's TIME right after it (before 7.0)."""
    if _has_pexpiretime(c):
        return int(c.execute_command("PEXPIRETIME", key))
    pttl, (sec, usec) = c.pipeline(transaction=False).pttl(key).time().execute()
    return int(pttl) if pttl < 0 else sec * 1000 + usec // 1000 + int(pttl)


def _has_pexpiretime(c: redis.Redis) -> bool:
    try:
        c.execute_command("PEXPIRETIME", b"support.compare:probe")
        return True
    except redis.ResponseError:  # before Redis 7.0
        return False


def keyspace(side: Side, dbs: Sequence[int] | None = None) -> dict[tuple[int, bytes], KeyState]:
    """Every key of a side as {(db, key): (type, value, absolute expiry ms)}."""
    out: dict[tuple[int, bytes], KeyState] = {}
    for base in side:
        pool = base.connection_pool  # the same server (a TCP port or a unix socket), in db
        space = base.info("keyspace")
        wanted = [int(k[2:]) for k in space if k.startswith("db")] if dbs is None else list(dbs)
        for db in wanted:
            c = redis.Redis(connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class, **{**pool.connection_kwargs, "db": db}))
            try:
                batch: list[bytes] = []
                for key in c.scan_iter(count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        _collect(c, db, batch, out)
                        batch = []
                if batch:
                    _collect(c, db, batch, out)
            finally:
                c.close()
    return out


def _collect(c: redis.Redis, db: int, keys: list[bytes], out: dict[tuple[int, bytes], KeyState]) -> None:
    for key, state in zip(keys, _read_keys(c, keys), strict=True):
        if state is not None:
            out[(db, key)] = state


def _difference(a: Any, b: Any) -> str:
    """The first place two values differ, for the message (a stream's state is long)."""
    at = ""
    while isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        a, b, at = a[i], b[i], f"{at}[{i}]"
    return f"{at + ': ' if at else ''}{a!r:.100} != {b!r:.100}"


def compare_keyspaces(
    source: dict[tuple[int, bytes], KeyState],
    target: dict[tuple[int, bytes], KeyState],
    *,
    ttl_tolerance_ms: int = 1000,
    ignore: Sequence[bytes] = IGNORED,
) -> Comparison:
    result = Comparison()
    if ignore:
        prefixes = tuple(ignore)
        source = {k: v for k, v in source.items() if not k[1].startswith(prefixes)}
        target = {k: v for k, v in target.items() if not k[1].startswith(prefixes)}
    now = int(time.time() * 1000)
    for k, (t, v, ttl) in source.items():
        got = target.get(k)
        if got is None and 0 <= ttl <= now + ttl_tolerance_ms:
            continue  # expired on the target after the source was read (same absolute expire time)
        result.compared += 1
        if got is None:
            result.mismatches.append(f"missing db{k[0]} {k[1]!r}")
            continue
        gt, gv, gttl = got
        if gt != t:
            result.mismatches.append(f"type db{k[0]} {k[1]!r}: {t} != {gt}")
        elif gv != v:
            result.mismatches.append(f"value db{k[0]} {k[1]!r}: {_difference(v, gv)}")
        elif (ttl < 0) != (gttl < 0) or abs(ttl - gttl) > ttl_tolerance_ms:
            result.mismatches.append(f"ttl db{k[0]} {k[1]!r}: {ttl} != {gttl}")
    for k in target.keys() - source.keys():
        if 0 <= target[k][2] <= now + ttl_tolerance_ms:
            continue  # expired on the source before it was read, not yet on the target
        result.mismatches.append(f"extra db{k[0]} {k[1]!r}")
    return result


def compare_servers(
    source: Side, target: Side, *, ttl_tolerance_ms: int = 1000, ignore: Sequence[bytes] = IGNORED
) -> Comparison:
    return compare_keyspaces(
        keyspace(source), keyspace(target), ttl_tolerance_ms=ttl_tolerance_ms, ignore=ignore
    )


def cluster_nodes(cluster: Any) -> list[redis.Redis]:
    """One client per node of a support.servers.RedisCluster (all masters)."""
    return [n.client() for n in cluster.nodes]
