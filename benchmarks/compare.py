"""Comparison throughput: ``engine.compare`` (and ``engine.verify``) over two equal servers.

    .venv/bin/python -m benchmarks.compare --keys 200000 --repeat 3

Fills a source and a target with the same keys (80% strings, the rest small hashes, lists, sets
and sorted sets; a tenth with a TTL), then times full comparisons. Reports keys/s (median and
best) and the CPU seconds of this process per run: the servers' own time is not ours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.refs import cpu_seconds
from cachemigrate.engine.compare import compare
from cachemigrate.protocol.endpoint import Endpoint
from support.servers import RedisServer, start_redis


def fill(server: RedisServer, keys: int, expire_at_ms: int) -> None:
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(keys):
        kind = i % 20
        if kind < 16:
            p.set(f"s:{i}", f"value-{i}" * (i % 5 + 1))
        elif kind == 16:
            p.hset(f"h:{i}", mapping={f"f{j}": j for j in range(8)})
        elif kind == 17:
            p.rpush(f"l:{i}", *range(8))
        elif kind == 18:
            p.sadd(f"set:{i}", *range(8))
        else:
            p.zadd(f"z:{i}", {f"m{j}": j for j in range(8)})
        if i % 10 == 0:
            p.pexpireat(f"s:{i}", expire_at_ms)  # absolute: the same on both sides
        if i % 5000 == 4999:
            p.execute()
    p.execute()


async def one(source: Endpoint, target: Endpoint, which: str, sample: int | None) -> tuple[int, float]:
    if which == "verify":
        from cachemigrate.engine.verify import verify

        vr = await verify(source, target, sample=sample, rounds=0)
        assert vr.ok, vr
        return vr.keys_compared, vr.seconds
    report = await compare(source, target)
    assert report.ok, report.examples
    return report.keys_compared, report.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--which", choices=("compare", "verify"), default="compare")
    ap.add_argument("--sample", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cm-bench-compare-") as tmp:
        src = start_redis(Path(tmp) / "src")
        dst = start_redis(Path(tmp) / "dst")
        try:
            at = int(time.time() * 1000) + 3_600_000
            fill(src, args.keys, at)
            fill(dst, args.keys, at)
            se, te = Endpoint.from_url(src.url), Endpoint.from_url(dst.url)
            rates, cpus = [], []
            for _ in range(args.repeat):
                cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
                n, _ = asyncio.run(one(se, te, args.which, args.sample))
                wall = time.perf_counter() - t0
                cpus.append(cpu_seconds(os.getpid()) - cpu0)
                rates.append(n / wall)
            print(f"{args.which}: {n:,} keys; keys/s median {statistics.median(rates):,.0f} "
                  f"best {max(rates):,.0f}; CPU s/run median {statistics.median(cpus):.2f}")
        finally:
            src.stop()
            dst.stop()


if __name__ == "__main__":
    main()
