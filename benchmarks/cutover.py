"""Cutover and rollback under a client writing through the front: what the client sees.

    python -m benchmarks.cutover [--scale 1000000] [--rate 1500] [--rounds 2] [--max-pause-ms 2000]
                                 [--between 2000] [--service] [--tamper 100]

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

``--service``: the same through `cachemigrate serve` (SQLite, a process of its own) and the
official SDK: A and B registered with their fronts, an incremental online task A → B, then
exchange-ip / rollback-ip (``--rounds`` pairs; the verification gate at its default, sampled).
Before the switches it measures the verification extension: a full verification of the clean
migration, then ``--tamper`` keys changed on B behind the migrator's back (a third changed, a
third deleted, a third added), found by a full verification, repaired, and verified again.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.refs import dataset, pipe_into

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from cachemigrate.engine.checkpoint import MemoryCheckpointStore
from cachemigrate.engine.cutover import CutoverOptions, CutoverReport, cutover
from cachemigrate.engine.fronts import open_front
from cachemigrate.engine.live import LiveMigration
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


def _verification(svc: Any, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a verification of the task, wait for its end; its report."""
    import httpx
    from demo_service import PROJECT

    path = f"/v2/{PROJECT}/migration-task/{task_id}/verifications"
    vid = svc.signed("POST", path, body)["verification_id"]
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        got = httpx.get(f"{svc.url}{path}/{vid}", headers=svc.signed_headers("GET", f"{path}/{vid}", "", b""),
                        timeout=30)
        got.raise_for_status()
        info: dict[str, Any] = got.json()
        if info["status"] != "RUNNING":
            if info["status"] != "SUCCESS":
                raise RuntimeError(f"verification {info['status']}: {info.get('error_message')}")
            report: dict[str, Any] = info["report"]
            return report
        time.sleep(0.5)
    raise RuntimeError("the verification did not end in an hour")


def _print_report(what: str, r: dict[str, Any]) -> None:
    kinds = ", ".join(f"{k} {v}" for k, v in r["by_kind"].items() if v) or "none"
    first = ", ".join(f"{k} {v}" for k, v in r["first_pass"].items() if v) or "none"
    print(f"  verification, {what}: {r['keys_compared']:,} keys compared in {r['seconds']:.1f} s; first "
          f"pass: {first}; converged {r['converged']}; repaired {r['repaired']} (failed "
          f"{r['repair_failed']}); mismatches left {r['mismatches']} ({kinds}); ok {r['ok']}", flush=True)


def _tamper(b: RedisServer, n: int) -> None:
    """n keys of B changed behind the migrator's back: changed, deleted, added (a third each)."""
    c = b.client()
    names = [k for k in c.scan_iter(count=1000, _type="string") if not k.startswith(b"__cachemigrate")]
    names = names[: 2 * (n // 3)]
    p = c.pipeline(transaction=False)
    for i, key in enumerate(names):
        if i % 2:
            p.delete(key)
        else:
            p.set(key, b"tampered", keepttl=True)
    for i in range(n - len(names)):
        p.set(f"bench:tampered:extra:{i}", "x")
    p.execute()


async def _measure_service(a: RedisServer, b: RedisServer, work: Path, args: argparse.Namespace) -> int:
    from demo_service import PROJECT, Service

    from support.haproxy import SERVER

    cli = str(Path(sys.executable).parent / "cachemigrate")
    hx = start_haproxy(work / "haproxy", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    svc = Service(cli, work, {"CACHEMIGRATE_FRONT_SOCKET_DIRS": str(work / "haproxy"),
                              "CACHEMIGRATE_EXCHANGE_MAX_PAUSE_SECONDS": str(args.max_pause_ms / 1000)})
    try:
        ids = {}
        for name, server in (("a", a), ("b", b)):
            front = {"driver": "haproxy", "address": f"127.0.0.1:{hx.port(name)}",
                     "runtime_api": str(hx.admin_socket), "server": f"back_{name}/{SERVER}"}
            ids[name] = svc.signed("POST", f"/v2/{PROJECT}/instances", {
                "name": f"bench-{name}", "addrs": f"127.0.0.1:{server.port}", "front": front})["instance_id"]
        v2, client = svc.sdk_client()
        t0 = time.monotonic()
        task_id = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(name="bench-cutover", vpc_id="l", subnet_id="l",
                                                  security_group_id="l"))).instance_id
        client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
            task_id=task_id, body=v2.SetOnlineMigrationTaskBody(
                migration_method="incremental_migration", resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(id=ids["a"]),
                target_instance=v2.ConfigMigrationInstanceBody(id=ids["b"]))))

        def show() -> Any:
            return client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))

        def logs() -> list[str]:
            got = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=200))
            return [e.message for e in got.migration_logs]

        await until(lambda: show().status in ("INCRMIGEATING", "FAILED"), 3600, interval=0.5,
                    what="the full phase")
        if show().status == "FAILED":
            raise RuntimeError(f"the task failed: {show().error_message}")
        print(f"  online task A -> B through the service: full sync done in {time.monotonic() - t0:.1f} s",
              flush=True)
        if not args.skip_verify:
            _print_report("clean migration (full)", _verification(svc, task_id, {"mode": "full"}))
        if args.tamper and not args.skip_verify:
            _tamper(b, args.tamper)
            print(f"  {args.tamper} keys of B tampered with (changed, deleted, added)", flush=True)
            _print_report("tampered (full)", _verification(svc, task_id, {"mode": "full", "rounds": 1}))
            repaired = _verification(svc, task_id, {"mode": "full", "repair": True})
            _print_report("tampered, with repair", repaired)
            _print_report("after the repair (full)", _verification(svc, task_id, {"mode": "full"}))

        writer = FrontWriter(hx.port("a"), rate=args.rate).start()
        switches: list[tuple[str, float, str]] = []
        try:
            await writer.more(args.between)
            for _ in range(args.rounds):
                for word in ("exchange-ip", "rollback-ip"):
                    began = time.monotonic()
                    if word == "exchange-ip":
                        fronts = [f"127.0.0.1:{hx.port('a')}", f"127.0.0.1:{hx.port('b')}"]
                        client.exchange_instance_ip(v2.ExchangeInstanceIpRequest(
                            task_id=task_id, body=v2.IpExchangeRequest(exchanged_ip=fronts)))
                    else:
                        client.rollback_exchange_instance_ip(v2.RollbackExchangeInstanceIpRequest(task_id=task_id))
                    await until(lambda: show().task_status not in ("EXCHANGING", "ROLLBACKING"), 3600,
                                interval=0.1, what=word)
                    task = show()
                    if task.task_status not in ("EXCHANGE_SUCCESS", "ROLLBACK_SUCCESS"):
                        raise RuntimeError(f"{word}: {task.task_status}: {task.error_message}")
                    said = next((m for m in logs() if m.startswith(f"{word} done")), "?")
                    switches.append((word, began, said.split(";")[0]))
                    print(f"  {said.split(';')[0]}", flush=True)
                    await writer.more(args.between)
        finally:
            result = writer.stop()
        await until(lambda: a.client().get("cutover:counter") == b.client().get("cutover:counter"), 600,
                    interval=0.2, what="B to have the last writes")
        on_a, on_b = verify(a.client(), result), verify(b.client(), result)
        if show().status == "INCRMIGEATING":  # after a rollback: the migration runs again
            client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=task_id))
        client.delete_migration_task(v2.DeleteMigrationTaskRequest(
            body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id])))
        await until(lambda: a.client().dbsize() == b.client().dbsize(), 60, interval=0.2,
                    what="the markers to go")
        print(f"  task deleted: DBSIZE A {a.client().dbsize():,}, B {b.client().dbsize():,}")
    finally:
        svc.stop()
        hx.stop()

    print(f"  client: {result.writes:,} acknowledged writes in {result.seconds:.1f} s "
          f"({result.rate:,.0f}/s; INCR + RPUSH per step at {args.rate:g} steps/s)")
    for i, (word, began, said) in enumerate(switches):
        # Its window: until the next switch was asked for (or the end of the writes).
        until_next = switches[i + 1][1] if i + 1 < len(switches) else result.started + result.seconds
        near = _gap_near(result, began, window=until_next - began)
        print(f"  {word}: {said}; client's longest gap around it "
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
    p.add_argument("--service", action="store_true", help="through `cachemigrate serve` and the SDK")
    p.add_argument("--tamper", type=int, default=100, help="--service: keys of B changed before verifying")
    p.add_argument("--skip-verify", action="store_true", help="--service: no verification figures")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cachemigrate-cutover-"))
    fast = ["--repl-diskless-sync-delay", "0"]
    a = start_redis(work / "a", args=fast)
    b = start_redis(work / "b", args=fast)
    try:
        if args.scale:
            pipe_into(a, dataset(args.scale, False, 0))
            print(f"  A holds {a.client().dbsize():,} keys (reference dataset, scale {args.scale:,})")
        return asyncio.run((_measure_service if args.service else _measure)(a, b, work, args))
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
