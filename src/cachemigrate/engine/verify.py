"""Convergent verification of a migration, and repair of what still differs.

A comparison taken while an incremental migration runs sees writes in flight: the source has a
write the target gets a few milliseconds later. So ``verify`` does not take its first look as the
verdict:

1. **First pass**: every key (``engine.compare.compare``), or a sample of ``sample`` keys: random
   keys of the source and of the target (``RANDOMKEY``, per db in proportion to its keys; a db
   with fewer keys than its share is read whole with SCAN), compared as the full pass does.
2. **Re-checks**: the keys that differed are read again on both sides, up to ``rounds`` times,
   ``delay`` seconds apart. A key converges when the target now matches the source, or matches
   the state the source had at the previous read (at least ``delay`` earlier): a write in flight
   arrives within a lag shorter than ``delay``, so the target may trail the source by one write,
   never hold a state the source never had. A real difference (the target changed, a write
   lost) differs at every round.
   A key the source changed again at every re-check is **in flight**: written faster than the
   rounds are apart (a counter, a queue), so the target always trails it by some writes and no
   read of both sides can settle it while the writes go on. It is neither a match nor a
   mismatch: the report lists it (``in_flight``, at most ``MAX_IN_FLIGHT``; more count as
   mismatches) and repair leaves it alone (a copy taken while its writes are in the stream would
   apply some of them twice). The cutover's gate compares these keys exactly inside its pause,
   when the source is paused and the target has applied its last offset (engine/cutover.py).
3. **Repair** (optional): each key still different is copied again from the source
   (engine/repair.py: DUMP + ``RESTORE ... REPLACE ABSTTL`` through the engine's own transform
   and writer; a key absent from the source is deleted from the target). Then the repaired keys
   are re-checked as in step 2.

What is left is the report's ``by_kind``: keys compared, mismatches by kind (missing on the
target, extra on the target, type, value, TTL beyond the tolerance), a bounded sample of keys.
At most ``MAX_TRACKED`` differences are kept to re-check and repair; more are counted as found
(``untracked``). Databases are compared index to index (db 3 with db 3), or as the migration's
db rules map them (below). Nothing is written
unless ``repair`` is set.

With the migration's ``options`` (its filter rules and db mode) the source is compared through
them (``engine.ruled_view.RuledView``): a clean filtered migration has no difference, and a repair
copies a key again through the same rules (its target db and new name; ``skip_expiring_within``
is not applied to a key being repaired).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cachemigrate.engine.compare import compare
from cachemigrate.engine.comparer import BATCH, Comparer, explain, scan_batches
from cachemigrate.engine.differences import Difference, Kind, Mismatch, describe, judge
from cachemigrate.engine.exactly_once import MARKER_PREFIX
from cachemigrate.engine.keystate import keyspace, now_ms
from cachemigrate.engine.repair import repair_keys
from cachemigrate.engine.ruled_view import RuledView
from cachemigrate.engine.spec import PipelineOptions
from cachemigrate.engine.status import EventSink, NullSink
from cachemigrate.protocol.connection import Connection
from cachemigrate.protocol.endpoint import Endpoint

MAX_TRACKED = 100_000  # differences kept to re-check and repair
MAX_EXAMPLES = 50
MAX_IN_FLIGHT = 1_000  # keys left to the cutover's exact check in its pause (a few ms of reads)
ROUNDS = 3
DELAY = 0.5  # seconds between re-checks: longer than the lag of a healthy incremental migration
_SAMPLE_TRIES = 3  # RANDOMKEY draws with replacement: top up a db's share this many times

Ident = tuple[int, int, bytes]  # (source db, target db, key on the target)


def _ident(d: Difference) -> Ident:
    return (d.db, d.tdb, d.target_key)


@dataclass
class VerifyReport:
    mode: str  # "full" or "sample"
    keys_compared: int = 0
    first_pass: dict[Kind, int] = field(default_factory=dict)  # differences the first look found
    converged: int = 0  # of those, matched on a re-check before any repair (writes in flight)
    rounds: int = 0  # re-check rounds run before any repair
    repaired: int = 0  # keys copied again from the source (or deleted from the target)
    repair_failed: int = 0  # keys the target refused while repairing
    by_kind: dict[Kind, int] = field(default_factory=dict)  # still different at the end
    examples: list[Mismatch] = field(default_factory=list)  # a sample of them
    untracked: int = 0  # differences beyond MAX_TRACKED: counted in by_kind, not re-checked
    in_flight: list[Ident] = field(default_factory=list)  # changed on the source at every re-check
    seconds: float = 0.0

    @property
    def mismatches(self) -> int:
        return sum(self.by_kind.values())

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (keys as text, undecodable bytes escaped)."""
        return {
            "ok": self.ok,
            "mode": self.mode,
            "keys_compared": self.keys_compared,
            "mismatches": self.mismatches,
            "by_kind": {k.value: self.by_kind.get(k, 0) for k in Kind},
            "first_pass": {k.value: self.first_pass.get(k, 0) for k in Kind},
            "converged": self.converged,
            "rounds": self.rounds,
            "repaired": self.repaired,
            "repair_failed": self.repair_failed,
            "untracked": self.untracked,
            "in_flight": len(self.in_flight),
            "examples": [
                {"db": m.db, "key": m.key.decode("utf-8", "backslashreplace"), "kind": m.kind.value,
                 "reason": m.reason}
                for m in self.examples
            ],
            "seconds": round(self.seconds, 3),
        }


async def verify(
    source: Endpoint,
    target: Endpoint,
    *,
    sample: int | None = None,
    rounds: int = ROUNDS,
    delay: float = DELAY,
    repair: bool = False,
    ttl_tolerance_ms: int = 1000,
    ignore: Sequence[bytes] = (MARKER_PREFIX,),
    events: EventSink | None = None,
    options: PipelineOptions | None = None,
) -> VerifyReport:
    """See the module docstring. ``sample``: compare about this many random keys (None: all).
    ``options``: the migration's (its filter rules and db mode are followed; None: none)."""
    started = time.monotonic()
    sink = events or NullSink()
    report = VerifyReport("full" if sample is None else "sample")
    tracked = _Tracked()
    view = RuledView(options)
    comparer = Comparer(source, target, ttl_tolerance_ms=ttl_tolerance_ms, view=view)
    try:
        if sample is None:
            first = await compare(source, target, ttl_tolerance_ms=ttl_tolerance_ms, ignore=ignore,
                                  on_difference=tracked.add, view=view)
            report.keys_compared = first.keys_compared
        else:
            report.keys_compared = await _sample_pass(comparer, max(0, sample), tuple(ignore), tracked)
        report.first_pass = dict(tracked.found)
        report.untracked = tracked.untracked
        report.rounds, report.converged = await _converge(comparer, tracked, rounds, delay)
        report.in_flight = tracked.take_in_flight(report.rounds)
        if repair and tracked.pending:
            report.repaired, report.repair_failed = await repair_keys(
                source, target, list(tracked.pending.values()), sink, options)
            await _converge(comparer, tracked, max(1, rounds), delay, wait_first=False)
    finally:
        await comparer.close()
    for d in tracked.pending.values():
        report.by_kind[d.kind] = report.by_kind.get(d.kind, 0) + 1
        if len(report.examples) < MAX_EXAMPLES:
            report.examples.append(d.mismatch())
    for kind, n in tracked.lost.items():
        report.by_kind[kind] = report.by_kind.get(kind, 0) + n
    report.seconds = time.monotonic() - started
    return report


async def check_exactly(
    source: Endpoint, target: Endpoint, keys: Sequence[Ident], *, ttl_tolerance_ms: int = 1000
) -> list[tuple[int, bytes, str]]:
    """(source db, key, why) of each of ``keys`` that differs, read once on both sides: for
    servers known to be quiet (the cutover's pause), where one look is the verdict."""
    comparer = Comparer(source, target, ttl_tolerance_ms=ttl_tolerance_ms)
    groups: dict[tuple[int, int], list[bytes]] = {}
    for sdb, tdb, key in keys:
        groups.setdefault((sdb, tdb), []).append(key)
    differ: list[tuple[int, bytes, str]] = []
    try:
        for (sdb, tdb), part in groups.items():
            for i in range(0, len(part), BATCH):
                batch = part[i:i + BATCH]
                src, tgt = await comparer.check(sdb, tdb, batch)
                now = now_ms()
                for key, s, t in zip(batch, src, tgt, strict=True):
                    kind = judge(s, t, comparer.tol, now)
                    if kind is not None:
                        differ.append((sdb, key, describe(kind, s, t, now)))
    finally:
        await comparer.close()
    return differ


class _Tracked:
    """The differences still open, by key; those beyond MAX_TRACKED only counted."""

    def __init__(self) -> None:
        self.pending: dict[Ident, Difference] = {}
        self.found: dict[Kind, int] = {}
        self.lost: dict[Kind, int] = {}  # untracked, by kind
        self.changes: dict[Ident, int] = {}  # re-checks that found the source changed again

    @property
    def untracked(self) -> int:
        return sum(self.lost.values())

    def add(self, d: Difference) -> None:
        self.found[d.kind] = self.found.get(d.kind, 0) + 1
        ident = _ident(d)
        if ident in self.pending or len(self.pending) < MAX_TRACKED:
            self.pending[ident] = d
        else:
            self.lost[d.kind] = self.lost.get(d.kind, 0) + 1

    def take_in_flight(self, rounds: int) -> list[Ident]:
        """The open differences whose source changed at each of ``rounds`` re-checks, out of
        ``pending`` (at most MAX_IN_FLIGHT: the rest stay differences)."""
        if rounds < 1:
            return []
        hot = [ident for ident in self.pending if self.changes.get(ident, 0) >= rounds][:MAX_IN_FLIGHT]
        for ident in hot:
            del self.pending[ident]
        return hot


# ---- first pass: a sample ------------------------------------------------------------------------

async def _sample_pass(comparer: Comparer, n: int, ignore: tuple[bytes, ...], tracked: _Tracked) -> int:
    """Compare ~``n`` random keys of the source plus as many of the target (each with the source
    key the rules make it of); returns keys compared."""
    src_space, tgt_space = await asyncio.gather(keyspace(comparer.source), keyspace(comparer.target))
    comparer.source_dbs = sorted(src_space)
    view = comparer.view
    chosen: dict[tuple[int, int], dict[bytes, bytes]] = {}  # (sdb, tdb) -> {source key: target key}

    async def draw(on_source: bool, space: dict[int, int], db: int) -> list[bytes]:
        total = sum(space.values())
        share = max(1, math.ceil(n * space[db] / total)) if n else 0
        keys = await _random_keys(await comparer.conn(on_source, db), share, space[db])
        return [k for k in keys if not (ignore and k.startswith(ignore))]

    for db in sorted(src_space):
        tdb = view.target_db(db)
        if tdb is None or not src_space[db]:
            continue
        keys, tkeys = view.keys(await draw(True, src_space, db))
        chosen.setdefault((db, tdb), {}).update(zip(keys, tkeys or keys, strict=True))
    for tdb in sorted(tgt_space):
        if not tgt_space[tdb]:
            continue
        tkeys = await draw(False, tgt_space, tdb)
        pairs = [(tdb, k, True) for k in tkeys] if view.identity else await explain(comparer, tdb, tkeys)
        for (sdb, skey, _), tkey in zip(pairs, tkeys, strict=True):
            chosen.setdefault((sdb, tdb), {})[skey] = tkey
    compared = 0
    for (sdb, tdb), pairs_of in chosen.items():
        items = list(pairs_of.items())
        for i in range(0, len(items), BATCH):
            part = items[i:i + BATCH]
            compared += await _check_first(comparer, sdb, tdb, [k for k, _ in part], [t for _, t in part],
                                           tracked)
    return compared


async def _random_keys(conn: Connection, want: int, size: int) -> list[bytes]:
    """About ``want`` distinct keys of the connection's db (of ~``size``): all of a small db."""
    if want <= 0:
        return []
    if want >= size:
        out: list[bytes] = []
        async with contextlib.aclosing(scan_batches(conn)) as batches:
            async for batch in batches:
                out.extend(batch)
        return out
    seen: dict[bytes, None] = {}
    for _ in range(_SAMPLE_TRIES):
        missing = want - len(seen)
        if missing <= 0:
            break
        for k in await conn.pipeline([(b"RANDOMKEY",)] * missing):
            if isinstance(k, bytes):
                seen[k] = None
    return list(seen)


async def _check_first(
    comparer: Comparer, sdb: int, tdb: int, keys: list[bytes], tkeys: list[bytes], tracked: _Tracked
) -> int:
    src, tgt = await comparer.check(sdb, tdb, keys, tkeys=tkeys)
    now = now_ms()
    compared = 0
    for key, tkey, s, t in zip(keys, tkeys, src, tgt, strict=True):
        compared += s.exists
        kind = comparer.judge(s, t, now)
        if kind is not None:
            tracked.add(Difference(sdb, tdb, key, kind, s, t, describe(kind, s, t, now),
                                   None if tkey == key else tkey))
    return compared


# ---- re-checks -----------------------------------------------------------------------------------

async def _converge(
    comparer: Comparer, tracked: _Tracked, rounds: int, delay: float, *, wait_first: bool = True
) -> tuple[int, int]:
    """Re-check the open differences up to ``rounds`` times; returns (rounds run, converged)."""
    ran = converged = 0
    while tracked.pending and ran < rounds:
        if wait_first or ran:
            await asyncio.sleep(delay)  # the time writes in flight get to arrive: not a poll
        ran += 1
        converged += await _recheck(comparer, tracked)
    return ran, converged


async def _recheck(comparer: Comparer, tracked: _Tracked) -> int:
    groups: dict[tuple[int, int], list[Difference]] = {}
    for d in tracked.pending.values():
        groups.setdefault((d.db, d.tdb), []).append(d)
    converged = 0
    for (sdb, tdb), diffs in groups.items():
        for i in range(0, len(diffs), BATCH):
            part = diffs[i:i + BATCH]
            keys = [d.key for d in part]
            prev = [d.source for d in part]
            src, tgt = await comparer.check(sdb, tdb, keys, prev, [d.target_key for d in part])
            now = now_ms()
            for d, s, t in zip(part, src, tgt, strict=True):
                kind = comparer.judge(s, t, now)
                ident = _ident(d)
                if kind is None or comparer.judge(d.source, t, now) is None:
                    del tracked.pending[ident]
                    tracked.changes.pop(ident, None)
                    converged += 1
                else:
                    if judge(d.source, s, comparer.tol, now) is not None:  # the source moved on
                        tracked.changes[ident] = tracked.changes.get(ident, 0) + 1
                    tracked.pending[ident] = Difference(
                        sdb, tdb, d.key, kind, s, t, describe(kind, s, t, now), d.tkey)
    return converged
