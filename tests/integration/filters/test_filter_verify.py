"""Verification of a filtered migration (engine/verify.py, `cachemigrate compare --filter`): the
source is compared through the migration's rules, so a clean filtered migration has no
mismatch, and a target changed behind the migrator's back is found by kind, under the names and
dbs the rules give, and repaired through the same rules. What the target should hold is the
independent reference's (support.filter_ref, compared with support.compare)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cachemigrate.engine.differences import Kind
from cachemigrate.engine.filter_rules import FilterRules
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import Phase, RecordingSink
from cachemigrate.engine.verify import VerifyReport, verify
from cachemigrate.protocol.endpoint import Endpoint
from support.compare import compare_keyspaces, keyspace
from support.filter_ref import Keyspace, expected, random_dataset
from support.servers import RedisServer

CLI = str(Path(sys.executable).parent / "cachemigrate")
FAST = ["--repl-diskless-sync-delay", "0"]
# One of (almost) every rule kind a key record meets: names, rename, db map and block, type, expiry.
RULES: dict[str, Any] = {
    "block_key_prefix": ["temp:", "cache:"],
    "rename_prefix": {"old:": "new:", "user:": "u:"},
    "db_map": {"1": 3},
    "block_db": [2],
    "block_type": ["stream"],
    "skip_expiring_within": 600,
    "max_ttl": 7200,
}
# The rules but the expiry ones: which source keys a verification compares.
BY_NAME = {k: v for k, v in RULES.items() if k not in ("skip_expiring_within", "max_ttl")}
TOL = 120_000  # a capped TTL counts from the migration's clock, the reference's from the test's


def _options() -> PipelineOptions:
    return PipelineOptions(filters=FilterRules.from_mapping(RULES))


def _migrated(redis_factory: Callable[..., RedisServer]) -> tuple[RedisServer, RedisServer, Keyspace]:
    source, target = redis_factory("src", args=FAST), redis_factory("dst")
    # Short TTLs of 300 s: left behind by skip_expiring_within, alive for the whole test.
    random_dataset(source.client(), n=150, dbs=(0, 1, 2), ttl_short_s=300)
    before = keyspace([source.client()])
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(source.url)),
                        Endpoint.from_url(target.url), _options())
    sink = RecordingSink()
    final = asyncio.run(run_pipeline(spec, events=sink))
    assert final.phase is Phase.DONE and final.keys_failed == 0, sink.logs[-5:]
    _target_is_reference(before, target)
    return source, target, before


def _target_is_reference(before: Keyspace, target: RedisServer) -> None:
    result = compare_keyspaces(expected(before, RULES), keyspace([target.client()]), ttl_tolerance_ms=TOL)
    assert result.ok and result.compared > 100, result.summary()


def _verify(source: RedisServer, target: RedisServer, **kw: Any) -> VerifyReport:
    kw.setdefault("delay", 0.05)
    return asyncio.run(verify(Endpoint.from_url(source.url), Endpoint.from_url(target.url), **kw))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], check=False, capture_output=True, text=True, timeout=120)


def test_clean_filtered_migration_verifies(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    source, target, before = _migrated(redis_factory)
    full = _verify(source, target, options=_options())
    assert full.ok and full.first_pass == {} and full.by_kind == {}, full.as_dict()
    assert full.keys_compared == len(expected(before, BY_NAME))
    sampled = _verify(source, target, sample=60, options=_options())
    assert sampled.ok and 60 <= sampled.keys_compared < full.keys_compared, sampled.as_dict()
    # Without the rules, what they left out is missing and what they renamed is extra.
    blind = _verify(source, target, rounds=0)
    assert blind.by_kind.get(Kind.MISSING) and blind.by_kind.get(Kind.EXTRA), blind.as_dict()

    rules = tmp_path / "rules.toml"
    rules.write_text('block_key_prefix = ["temp:", "cache:"]\nblock_type = ["stream"]\nblock_db = [2]\n'
                     'skip_expiring_within = 600\nmax_ttl = 7200\n[rename_prefix]\n"old:" = "new:"\n'
                     '"user:" = "u:"\n[db_map]\n"1" = 3\n')
    res = _cli("compare", source.url, target.url, "--filter", str(rules), "--json", "--delay", "0.05")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["keys_compared"] == full.keys_compared
    res = _cli("compare", source.url, target.url, "--rounds", "0")
    assert res.returncode == 1 and "missing in target" in res.stderr, res.stderr


def _pick(want: Keyspace, db: int, prefix: bytes, kind: str | None = None) -> bytes:
    return next(k for (d, k), (t, _, _) in sorted(want.items())
                if d == db and k.startswith(prefix) and (kind is None or t == kind))


def test_tampered_filtered_target_found_and_repaired(redis_factory: Callable[..., RedisServer]) -> None:
    source, target, before = _migrated(redis_factory)
    want = expected(before, RULES)
    renamed = _pick(want, 0, b"u:", kind="string")
    lost = _pick(want, 3, b"order:")
    # A key with a TTL in the source (capped on the target): without one on the target, it differs.
    with_ttl = {k: v for k, v in want.items() if k in before and before[k][2] >= 0}
    capped = _pick(with_ttl, 0, b"order:")
    blocked = next(k for (d, k) in sorted(before) if d == 0 and k.startswith(b"temp:"))
    t0 = target.client()
    t0.set(renamed, "changed")  # value, under the new name
    target.client(db=3).delete(lost)  # missing, in the db the map gives
    t0.persist(capped)  # ttl
    t0.set(blocked, "x")  # extra: the rules leave that source key out
    target.client(db=2).set("stray", "x")  # extra: no source db goes to db 2

    found = _verify(source, target, rounds=1, options=_options())
    assert found.by_kind == {Kind.VALUE: 1, Kind.MISSING: 1, Kind.TTL: 1, Kind.EXTRA: 2}, found.as_dict()
    named = {(m.db, m.key, m.kind) for m in found.examples}
    source_of = b"user:" + renamed.removeprefix(b"u:")
    assert {(0, source_of, Kind.VALUE), (1, lost, Kind.MISSING), (0, capped, Kind.TTL),
            (0, blocked, Kind.EXTRA), (2, b"stray", Kind.EXTRA)} == named, named

    fixed = _verify(source, target, repair=True, options=_options())
    assert fixed.ok and fixed.repaired == 5 and fixed.repair_failed == 0, fixed.as_dict()
    _target_is_reference(before, target)
