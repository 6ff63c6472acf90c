"""What a target should hold after a migration with filter rules: the independent reference.

Works on a keyspace read with redis-py (``support.compare.keyspace``: {(db, key): (type, value,
absolute expiry ms)}) and the rules as the user writes them (the TOML / JSON mapping of
docs/filters.md), with code of its own: nothing of ``cachemigrate.engine.filters`` is used, so a
mistake there shows as a mismatch here.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import Any

import redis

from support.compare import KeyState

Keyspace = dict[tuple[int, bytes], KeyState]


def _b(items: Any) -> list[bytes]:
    return [s.encode() for s in items or ()]


def _matches(key: bytes, rules: Mapping[str, Any], side: str) -> bool:
    if key in _b(rules.get(f"{side}_key")):
        return True
    if any(key.startswith(p) for p in _b(rules.get(f"{side}_key_prefix"))):
        return True
    if any(key.endswith(s) for s in _b(rules.get(f"{side}_key_suffix"))):
        return True
    return any(re.search(r, key, re.DOTALL) for r in _b(rules.get(f"{side}_key_regex")))


def _has(rules: Mapping[str, Any], side: str) -> bool:
    return any(rules.get(f"{side}_key{w}") for w in ("", "_prefix", "_suffix", "_regex"))


def key_passes(key: bytes, rules: Mapping[str, Any]) -> bool:
    if _has(rules, "block") and _matches(key, rules, "block"):
        return False
    return not _has(rules, "allow") or _matches(key, rules, "allow")


def rename(key: bytes, rules: Mapping[str, Any]) -> bytes:
    best = b""
    for old in sorted((rules.get("rename_prefix") or {}), key=len, reverse=True):
        if key.startswith(old.encode()):
            best = old.encode()
            return rules["rename_prefix"][old].encode() + key[len(best):]
    return key


def target_db(db: int, rules: Mapping[str, Any], *, fold: bool = False) -> int | None:
    if db in (rules.get("block_db") or ()):
        return None
    allow = rules.get("allow_db")
    if allow and db not in allow:
        return None
    mapped = {int(k): v for k, v in (rules.get("db_map") or {}).items()}
    if db in mapped:
        return int(mapped[db])
    return 0 if fold else db


def expected(source: Keyspace, rules: Mapping[str, Any], *, now_ms: int | None = None,
             fold: bool = False) -> Keyspace:
    """The keyspace a target should hold once ``source`` moved under ``rules`` (RDB path)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: Keyspace = {}
    skip = rules.get("skip_expiring_within")
    cap = rules.get("max_ttl")
    for (db, key), (t, v, source_exp) in source.items():
        exp = source_exp
        tdb = target_db(db, rules, fold=fold)
        if tdb is None or not key_passes(key, rules):
            continue
        if t in (rules.get("block_type") or ()):
            continue
        if rules.get("allow_type") and t not in rules["allow_type"]:
            continue
        if skip and exp >= 0 and exp < now + skip * 1000:
            continue
        if cap:
            limit = now + int(cap * 1000)
            exp = limit if exp < 0 or exp > limit else exp
        out[(tdb, rename(key, rules))] = (t, v, exp)
    return out


# ---- a random dataset --------------------------------------------------------------------------

PREFIXES = ("user:", "temp:", "cache:", "order:", "old:", "old:deep:", "")
SUFFIXES = ("", "", ":tmp", ":old", ":active")


EXACT = ("user:exact", "order:exact:tmp", "exact", "exact2")


def random_dataset(client: redis.Redis | redis.RedisCluster, *, n: int = 240,
                   dbs: tuple[int, ...] = (0, 1, 2), seed: int = 7, ttl_short_s: int = 40,
                   hash_tag: bool = False) -> int:
    """Keys of every type under the prefixes and suffixes the rule sets below name, some with a
    long TTL (hours), some with one of ``ttl_short_s`` (what ``skip_expiring_within`` drops).
    Returns how many keys were written."""
    rng = random.Random(seed)
    count = 0
    for db in dbs:
        if isinstance(client, redis.RedisCluster):
            assert db == 0
            r: Any = client
        else:
            pool = client.connection_pool.connection_kwargs
            r = redis.Redis(port=pool["port"], password=pool.get("password"), db=db)
        p = r.pipeline(transaction=False)
        for name in EXACT:  # what the "key exact" rules name
            p.set(name, f"exact in db {db}")
        for i in range(n):
            tag = "{t}" if hash_tag else ""
            key = f"{rng.choice(PREFIXES)}{tag}k{db}.{i}{rng.choice(SUFFIXES)}"
            kind = i % 6
            if kind == 0:
                p.set(key, f"v{i}" * rng.randrange(1, 9))
            elif kind == 1:
                p.rpush(key, *[f"e{j}" for j in range(rng.randrange(1, 6))])
            elif kind == 2:
                p.sadd(key, *[f"m{j}" for j in range(rng.randrange(1, 6))])
            elif kind == 3:
                p.zadd(key, {f"z{j}": j * 0.5 for j in range(rng.randrange(1, 6))})
            elif kind == 4:
                p.hset(key, mapping={f"f{j}": j for j in range(rng.randrange(1, 6))})
            else:
                p.xadd(key, {"f": i})
            ttl = rng.randrange(5)
            if ttl == 0:
                p.expire(key, 3 * 3600 + i)
            elif ttl == 1:
                p.expire(key, ttl_short_s)
            count += 1
        p.execute()
        if r is not client:
            r.close()
    return count + len(EXACT) * len(dbs)


# One rule set per rule kind (names as in docs/filters.md); each leaves out or changes a part.
RULE_KINDS: dict[str, dict[str, Any]] = {
    "key exact": {"block_key": ["user:exact", "order:exact:tmp", "exact"]},
    "key prefix (allow)": {"allow_key_prefix": ["user:", "order:"]},
    "key prefix (block)": {"block_key_prefix": ["temp:", "cache:"]},
    "key suffix": {"block_key_suffix": [":tmp", ":old"],
                   "allow_key_suffix": [":active", ":tmp", "0", "2", "4"]},
    "key regex": {"allow_key_regex": [r"^(user|order):k\d\.\d*[02468](:|$)"], "block_key_regex": [":old$"]},
    "db allow/block": {"allow_db": [0, 2], "block_db": [2]},
    "db map": {"db_map": {"1": 0, "2": 5}, "block_db": [0]},
    "type": {"block_type": ["hash", "stream"]},
    "expiry: skip": {"skip_expiring_within": 600},
    "expiry: cap TTL": {"max_ttl": 7200},
    "rename prefix": {"rename_prefix": {"old:": "new:", "old:deep:": "moved:", "user:": "u:"}},
}

# Rules of commands (the incremental phase, an AOF's commands), with what they leave behind of
# the dataset, in the terms of the rules on keys: the commands that build each type are the
# test's own knowledge (random_dataset writes SET RPUSH SADD ZADD HSET XADD EXPIRE; an AOF
# rewrite writes SET RPUSH SADD ZADD HMSET XADD XSETID PEXPIREAT).
COMMAND_KINDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "command (block)": ({"block_command": ["RPUSH", "ZADD"]}, {"block_type": ["list", "zset"]}),
    "command (allow)": ({"allow_command": ["SET", "SADD", "HSET", "HMSET", "EXPIRE", "PEXPIREAT"]},
                        {"block_type": ["list", "zset", "stream"]}),
    "command group": ({"block_command_group": ["HASH", "SET"]}, {"block_type": ["hash", "set"]}),
}
