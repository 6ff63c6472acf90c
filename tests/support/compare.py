"""Key-by-key comparison of servers for tests: every db, type, value, TTL (with a tolerance).

A side is a list of redis-py clients whose keys are merged: one client for a standalone server,
one per master for a cluster (``cluster_nodes()``). Values are read per type: strings, lists,
sets, sorted sets (with scores), hashes, streams (entries, last id, groups with their last
delivered id and pending counts). Keys starting with one of ``ignore`` (default: the offset
marker the migration keeps in the target) are left out on both sides.
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


def _normal(t: str, raw: list[Any]) -> Any:
    if t == "set":
        return sorted(raw[0])
    if t == "hash":
        return sorted(raw[0].items())
    if t == "stream":
        entries, info, groups = raw
        gs = sorted((_s(g["name"]), _s(g["last-delivered-id"]), g["pending"]) for g in groups)
        return (entries, _s(info["last-generated-id"]), gs)
    return raw[0]


def _read_keys(c: redis.Redis, keys: list[bytes]) -> list[KeyState | None]:
    p = c.pipeline(transaction=False)
    for k in keys:
        p.type(k)
    types = [_s(t) for t in p.execute()]
    p = c.pipeline(transaction=False)
    counts = []
    for k, t in zip(keys, types, strict=True):
        counts.append(_queue_value(p, k, t) if t != "none" else 0)
        p.pttl(k)
    replies = p.execute(raise_on_error=False)
    now = time.time_ns() // 1_000_000
    out: list[KeyState | None] = []
    i = 0
    for t, n in zip(types, counts, strict=True):
        raw, pttl = replies[i : i + n], int(replies[i + n])
        i += n + 1
        if t == "none" or any(isinstance(r, Exception) for r in raw):
            out.append(None)  # deleted or changed type while we read it
            continue
        # Absolute, so that the time a comparison takes does not count as TTL drift.
        out.append((t, _normal(t, raw), -1 if pttl < 0 else now + pttl))
    return out


def keyspace(side: Side, dbs: Sequence[int] | None = None) -> dict[tuple[int, bytes], KeyState]:
    """Every key of a side as {(db, key): (type, value, absolute expiry ms)}."""
    out: dict[tuple[int, bytes], KeyState] = {}
    for base in side:
        pool_kw = base.connection_pool.connection_kwargs
        space = base.info("keyspace")
        wanted = [int(k[2:]) for k in space if k.startswith("db")] if dbs is None else list(dbs)
        for db in wanted:
            c = redis.Redis(host=pool_kw.get("host", "127.0.0.1"), port=pool_kw["port"],
                            password=pool_kw.get("password"), db=db)
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
            result.mismatches.append(f"value db{k[0]} {k[1]!r}: {v!r:.80} != {gv!r:.80}")
        elif (ttl < 0) != (gttl < 0) or abs(ttl - gttl) > ttl_tolerance_ms:
            result.mismatches.append(f"ttl db{k[0]} {k[1]!r}: {ttl} != {gttl}")
    for k in target.keys() - source.keys():
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
