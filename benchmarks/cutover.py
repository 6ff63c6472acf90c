"""Cutover and rollback under a client writing through the front: what the client sees.

    python -m benchmarks.cutover [--scale 1000000] [--rate 1500] [--rounds 2] [--max-pause-ms 2000]
                                 [--between 2000]

Two redis-servers A and B (A loaded with the reference dataset of ``--scale`` keys:
benchmarks/refs.py ``dataset``; 0 for none), a real haproxy with a front for each, and the
incremental migration A → B (engine, in this process). A client in its own process
(tests/support/front_writer.py) writes through A's front at ``--rate`` steps per second (each an
INCR and an RPUSH of a sequence number: twice as many writes), every write retried on a
connection error until acknowledged. Each round is a cutover (A → B), ``--between`` more steps,
a rollback (B → A), ``--between`` more steps. Printed: the pause each switch took (as the engine
saw it), the client's longest gap between two acknowledged writes around each switch and
overall, the errors it saw, and the acknowledged writes lost or doubled on the server the front
ends on (A), then on B once the migration after the rollback has caught up.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.refs import dataset, pipe_into

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cachemigrate.engine.checkpoint import MemoryCheckpointStore
from cachemigrate.engine.cutover import CutoverOptions, CutoverReport, LiveMigration, cutover
from cachemigrate.engine.fronts import open_front
from cachemigrate.engine.spec import Endpoint, PipelineOptions, PipelineSpec, SourceKind, SourceSpec
from cachemigrate.engine.status import LogLevel, StatusSnapshot
from support.front_writer import FrontWriter, WriterResult, verify
from support.haproxy import start_haproxy
from support.poll import until
from support.servers import RedisServer, start_redis


class _Sink:
    def status(self, snapshot: StatusSnapshot) -> None:
        pass

    def log(self, level: LogLevel, message: str) -> None:
        if level is not LogLevel.INFO or "cutover" in message:
            print(f"    {level.value}: {message}", flush=True)


def _migration(src: RedisServer, dst: RedisServer, sink: _Sink) -> LiveMigration:
    spec = PipelineSpec(SourceSpec(SourceKind.SYNC, endpoint=Endpoint.from_url(src.url)),
                        Endpoint.from_url(dst.url), PipelineOptions(incremental=True))
    m = LiveMigration(spec, events=sink, store=MemoryCheckpointStore())
    m.start()
    return m


async def _applied(m: LiveMigration, src: RedisServer, timeout: float = 600) -> None:
    goal = int(src.client().info("replication")["master_repl_offset"])

    def there() -> bool:
        pos = m.running().applied_position()
        return pos is not None and pos.phase == "incremental" and pos.offset >= goal

    await until(there, timeout, interval=0.1, what=f"the migration to apply offset {goal}")


def _gap_near(result: WriterResult, at: float, window: float = 2.0) -> float:
    """The longest gap ending within ``window`` s after ``at`` (time.monotonic())."""
    return max((g for end, g in result.long_gaps if at <= end <= at + window), default=0.0)


async def _measure(a: RedisServer, b: RedisServer, work: Path, args: argparse.Namespace) -> int:
    hx = start_haproxy(work / "haproxy", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    try:
        fronts = [open_front(hx.url("a")), open_front(hx.url("b"))]
        sink = _Sink()
        options = CutoverOptions(max_pause=args.max_pause_ms / 1000)
        t0 = time.monotonic()
        forward = _migration(a, b, sink)
        await _applied(forward, a)
        print(f"  full sync A -> B and caught up: {time.monotonic() - t0:.1f} s", flush=True)
        writer = FrontWriter(hx.port("a"), rate=args.rate).start()
        switches: list[tuple[str, float, CutoverReport]] = []
        try:
            await writer.more(args.between)
            live = forward
            for _ in range(args.rounds):
                for name in ("cutover", "rollback"):
                    began = time.monotonic()
                    live, report = await cutover(live, fronts, reverse_store=MemoryCheckpointStore(),
                                                 options=options)
                    switches.append((name, began, report))
                    await writer.more(args.between)
        finally:
            result = writer.stop()
        await _applied(live, a)
        await live.stop()
        on_a, on_b = verify(a.client(), result), verify(b.client(), result)
    finally:
        hx.stop()

    print(f"  client: {result.writes:,} acknowledged writes in {result.seconds:.1f} s "
          f"({result.rate:,.0f}/s; INCR + RPUSH per step at {args.rate:g} steps/s)")
    for name, began, report in switches:
        near = _gap_near(result, began)
        steps = ", ".join(f"{step} {ms:.1f}" for step, ms in report.timeline)
        print(f"  {name} {report.old} -> {report.new}: writes paused {report.paused_ms:.1f} ms (engine: "
              f"{steps}); client's longest gap around it "
              f"{f'{near * 1000:.1f} ms' if near else 'under 5 ms'}")
    print(f"  longest gap between two acknowledged writes overall: {result.max_gap * 1000:.1f} ms "
          f"(at {result.max_gap_at:.2f} s); gaps over 5 ms: {len(result.long_gaps)}")
    print(f"  errors the client saw: {result.error_count}")
    for line in result.errors[:10]:
        print(f"    {line}")
    for where, v in (("A (the front ends here)", on_a), ("B (after the migration caught up)", on_b)):
        print(f"  on {where}: {v.acknowledged:,} acknowledged steps; lost {len(v.lost)}, doubled "
              f"{len(v.doubled)}, unexpected {len(v.unexpected)}; counter {v.counter:,}")
    return 0 if on_a.ok and on_b.ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=0, help="keys of the reference dataset in A (0: none)")
    p.add_argument("--rate", type=float, default=1500.0, help="client steps per second (2 writes each)")
    p.add_argument("--rounds", type=int, default=2, help="cutover + rollback pairs")
    p.add_argument("--max-pause-ms", type=int, default=2000)
    p.add_argument("--between", type=int, default=2000, help="client steps between two switches")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cachemigrate-cutover-"))
    fast = ["--repl-diskless-sync-delay", "0"]
    a = start_redis(work / "a", args=fast)
    b = start_redis(work / "b", args=fast)
    try:
        if args.scale:
            pipe_into(a, dataset(args.scale, False, 0))
            print(f"  A holds {a.client().dbsize():,} keys (reference dataset, scale {args.scale:,})")
        return asyncio.run(_measure(a, b, work, args))
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
