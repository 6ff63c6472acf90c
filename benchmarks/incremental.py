"""Incremental sync under write load: lag in seconds and apply rate while redis-benchmark writes.

The migration runs in this process (run_pipeline with a recording sink), redis-benchmark writes
to the source for a fixed time; every second the snapshot's lag (seconds and bytes) and the
target's ops/s are sampled.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import redis.asyncio as aioredis

from benchmarks.refs import start_redis
from cachemigrate.engine.pipeline import run_pipeline
from cachemigrate.engine.spec import Endpoint, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, StatusSnapshot


class _Sink:
    def __init__(self) -> None:
        self.last: StatusSnapshot | None = None

    def status(self, snapshot: StatusSnapshot) -> None:
        self.last = snapshot

    def log(self, level: LogLevel, message: str) -> None:
        if level is not LogLevel.INFO:
            print(f"    {level.value}: {message}")


async def _measure(src_url: str, tgt_url: str, seconds: float, bench_args: list[str]) -> None:
    sink = _Sink()
    stop = asyncio.Event()
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(src_url)),
                        Endpoint.from_url(tgt_url), PipelineOptions(incremental=True))
    task = asyncio.create_task(run_pipeline(spec, events=sink, stop=stop))
    while sink.last is None or not sink.last.caught_up:
        await asyncio.sleep(0.2)
        if task.done():
            task.result()
    load = await asyncio.create_subprocess_exec("redis-benchmark", *bench_args,
                                                stdout=asyncio.subprocess.DEVNULL)
    lags: list[float] = []
    lag_bytes: list[int] = []
    rates: list[float] = []
    probe_lags: list[float] = []
    src = aioredis.Redis.from_url(src_url)
    tgt = aioredis.Redis.from_url(tgt_url)
    t0 = time.monotonic()
    next_sample = t0 + 1.0
    while time.monotonic() - t0 < seconds and load.returncode is None:
        # End-to-end lag: a unique value written to the source, polled for on the target.
        value = repr(time.time()).encode()
        await src.set("bench:probe", value)
        written = time.monotonic()
        while await tgt.get("bench:probe") != value and time.monotonic() - written < 10:
            await asyncio.sleep(0.002)
        probe_lags.append(time.monotonic() - written)
        await asyncio.sleep(0.1)
        if time.monotonic() >= next_sample:
            next_sample += 1.0
            s = sink.last
            if s is not None:
                lags.append(s.lag_seconds or 0.0)
                lag_bytes.append(s.offset_lag_bytes or 0)
                rates.append(s.ops_per_sec)
    await src.aclose()
    await tgt.aclose()
    if load.returncode is None:
        load.terminate()
    await load.wait()
    caught = time.monotonic()
    while sink.last is None or not sink.last.caught_up:
        await asyncio.sleep(0.1)
    drain = time.monotonic() - caught
    stop.set()
    await task
    print(f"  incremental under redis-benchmark ({' '.join(bench_args[4:])}), {len(lags)} samples:")
    q = statistics.quantiles(probe_lags, n=20) if len(probe_lags) > 1 else probe_lags * 19
    print(f"    end-to-end lag (probe key written to the source until seen on the target, "
          f"{len(probe_lags)} probes): max {max(probe_lags):.3f} s, p95 {q[18]:.3f} s, "
          f"median {statistics.median(probe_lags):.3f} s")
    print(f"    engine lag seconds (1 s resolution): max {max(lags):.1f}, "
          f"median {statistics.median(lags):.1f}; lag bytes: max {max(lag_bytes):,}, "
          f"median {statistics.median(lag_bytes):,.0f}")
    print(f"    apply rate on the target: median {statistics.median(rates):,.0f} commands/s, "
          f"max {max(rates):,.0f}; caught up {drain:.1f} s after the load stopped")


def bench_incremental(work: Path, seconds: float = 20.0) -> None:
    work = work.resolve()
    src = start_redis(work / "incr-source")
    tgt = start_redis(work / "incr-target")
    try:
        src.client().set("seed", "1")
        args = ["-p", str(src.port), "-q", "-c", "20", "-t", "set,incr,lpush,hset",
                "-n", "100000000", "-r", "100000", "-d", "64"]
        asyncio.run(_measure(src.url, tgt.url, seconds, args))
    finally:
        src.stop()
        tgt.stop()
