"""Key-by-key comparison of servers for tests: every db, type, value, TTL (with a tolerance).

A side is a list of redis-py clients whose keys are merged: one client for a standalone server,
one per master for a cluster (``cluster_nodes()``). Values are read per type: strings, lists,
sets, sorted sets (with scores), hashes, streams (entries, last id, groups with their last
delivered id and pending counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

Side = Sequence[redis.Redis]
KeyState = tuple[str, Any, int]  # type, value, pttl


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


def _value(c: redis.Redis, key: bytes, t: str) -> Any:
    if t == "string":
        return c.get(key)
    if t == "list":
        return c.lrange(key, 0, -1)
    if t == "set":
        return sorted(c.smembers(key))
    if t == "zset":
        return c.zrange(key, 0, -1, withscores=True)
    if t == "hash":
        return sorted(c.hgetall(key).items())
    if t == "stream":
        info = c.xinfo_stream(key)
        groups = sorted(
            (_s(g["name"]), _s(g["last-delivered-id"]), g["pending"]) for g in c.xinfo_groups(key)
        )
        return (c.xrange(key, "-", "+"), _s(info["last-generated-id"]), groups)
    return c.dump(key)  # module types: compare the serialized value


def keyspace(side: Side, dbs: Sequence[int] | None = None) -> dict[tuple[int, bytes], KeyState]:
    """Every key of a side as {(db, key): (type, value, pttl)}."""
    out: dict[tuple[int, bytes], KeyState] = {}
    for base in side:
        pool_kw = base.connection_pool.connection_kwargs
        space = base.info("keyspace")
        wanted = [int(k[2:]) for k in space if k.startswith("db")] if dbs is None else list(dbs)
        for db in wanted:
            c = redis.Redis(host=pool_kw.get("host", "127.0.0.1"), port=pool_kw["port"],
                            password=pool_kw.get("password"), db=db)
            try:
                for key in c.scan_iter(count=1000):
                    t = _s(c.type(key))
                    if t == "none":
                        continue
                    out[(db, key)] = (t, _value(c, key, t), int(c.pttl(key)))
            finally:
                c.close()
    return out


def compare_keyspaces(
    source: dict[tuple[int, bytes], KeyState],
    target: dict[tuple[int, bytes], KeyState],
    *,
    ttl_tolerance_ms: int = 1000,
) -> Comparison:
    result = Comparison()
    for k, (t, v, ttl) in source.items():
        result.compared += 1
        got = target.get(k)
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


def compare_servers(source: Side, target: Side, *, ttl_tolerance_ms: int = 1000) -> Comparison:
    return compare_keyspaces(keyspace(source), keyspace(target), ttl_tolerance_ms=ttl_tolerance_ms)


def cluster_nodes(cluster: Any) -> list[redis.Redis]:
    """One client per node of a support.servers.RedisCluster (all masters)."""
    return [n.client() for n in cluster.nodes]
