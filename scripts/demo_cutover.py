"""`make demo`, step 3: the end of a migration through the official DCS SDK against `cachemigrate
serve`: migrate under writes -> verify -> exchange-ip -> rollback-ip -> exchange-ip again, with a
client writing through the source's haproxy front all along. Each switch prints the length of
the write pause (from the task's log), the longest gap the client saw, its errors and the
acknowledged writes lost or doubled on the server the front ends on; at the end every key is
compared and the task deleted (no key left behind)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from demo_service import PROJECT, Service

from cachemigrate.engine.fronts import open_front
from cachemigrate.engine.verify import VerifyReport
from cachemigrate.engine.verify import verify as verify_keys
from cachemigrate.protocol.endpoint import Endpoint
from support.front_writer import FrontWriter, WriterResult, verify
from support.haproxy import SERVER, start_haproxy

RATE = 1000  # INCR + RPUSH steps per second: 2,000 writes/s through the front


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _at(url: str) -> int:
    return asyncio.run(open_front(url).backend()).port


def run(cli: str, work: Path, source: Any, target: Any, step: Callable[[str], None]) -> bool:
    binary = shutil.which("haproxy")
    if binary is None:
        raise RuntimeError("haproxy is not installed (make demo installs it: .ci/provision haproxy)")
    step("the end of a migration through the SDK: migrate under writes, verify, exchange-ip, "
         "rollback-ip, exchange-ip again")
    hx = start_haproxy(work / "haproxy", {"a": ("127.0.0.1", source.port), "b": ("127.0.0.1", target.port)},
                       binary=binary)
    svc = Service(cli, work, {"CACHEMIGRATE_FRONT_SOCKET_DIRS": str(work / "haproxy"),
                              "CACHEMIGRATE_EXCHANGE_VERIFY": "sampled"})
    writers: list[FrontWriter] = []
    try:
        print(f"front a at 127.0.0.1:{hx.port('a')} -> source :{source.port}; front b at "
              f"127.0.0.1:{hx.port('b')} -> target :{target.port} (haproxy Runtime API {hx.admin_socket})")
        target.client().flushall()
        print(f"target :{target.port} emptied (it held step 1's import)")
        ids = {}
        for name, server in (("a", source), ("b", target)):
            front = {"driver": "haproxy", "address": f"127.0.0.1:{hx.port(name)}",
                     "runtime_api": str(hx.admin_socket), "server": f"back_{name}/{SERVER}"}
            ids[name] = svc.signed("POST", f"/v2/{PROJECT}/instances", {
                "name": f"demo-{name}", "addrs": f"127.0.0.1:{server.port}", "front": front})["instance_id"]
        print(f"instances registered with their fronts: source {ids['a']}, target {ids['b']}")
        v2, client = svc.sdk_client()

        def show() -> Any:
            return client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))

        def logs(word: str) -> list[str]:
            got = client.list_migration_task_logs(v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=100))
            return [e.message for e in got.migration_logs if word in e.message]

        def writer(n: int) -> FrontWriter:
            w = FrontWriter(hx.port("a"), rate=RATE, prefix=f"demo:switch{n}").start()
            writers.append(w)
            return w

        step("migrating under writes (a client writes through front a)")
        first = writer(1)
        task_id = client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(name="demo-cutover", vpc_id="local", subnet_id="local",
                                                  security_group_id="local"))).instance_id
        client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
            task_id=task_id, body=v2.SetOnlineMigrationTaskBody(
                migration_method="incremental_migration", resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(id=ids["a"]),
                target_instance=v2.ConfigMigrationInstanceBody(id=ids["b"]))))
        _wait(lambda: show().status in ("INCRMIGEATING", "FAILED"), 600, "the full phase")
        if show().status == "FAILED":
            raise RuntimeError(f"the migration task failed: {show().error_message}")
        print(f"task {task_id}: INCRMIGEATING")

        step("verifying the target against the source (full, re-checks for writes in flight)")
        path = f"/v2/{PROJECT}/migration-task/{task_id}/verifications"
        vid = svc.signed("POST", path, {"mode": "full"})["verification_id"]
        report: dict[str, Any] = {}

        def verified() -> bool:
            nonlocal report
            headers = svc.signed_headers("GET", f"{path}/{vid}", "", b"")
            got = httpx.get(f"{svc.url}{path}/{vid}", headers=headers, timeout=30)
            got.raise_for_status()
            report = got.json()
            return bool(report["status"] != "RUNNING")

        _wait(verified, 600, "the verification")
        r = report.get("report") or {}
        print(f"verification {report['status']}: {r.get('keys_compared', 0):,} keys compared, "
              f"{r.get('mismatches')} mismatches, {r.get('converged')} converged on a re-check")
        ok = report["status"] == "SUCCESS" and r.get("ok") is True

        results: list[tuple[str, WriterResult, Any]] = []
        plan = (("exchange-ip", "EXCHANGE_SUCCESS", target), ("rollback-ip", "ROLLBACK_SUCCESS", source),
                ("exchange-ip", "EXCHANGE_SUCCESS", target))
        current = first
        for n, (word, success, lands) in enumerate(plan, start=1):
            step(f"{word} with the client writing through front a")
            asyncio.run(current.more(RATE))  # a second of writes before the switch
            if word == "exchange-ip":
                # exchange-ip needs the incremental phase (after a rollback the migration resumes)
                _wait(lambda: show().status in ("INCRMIGEATING", "FAILED"), 600, "the incremental phase")
                fronts = [f"127.0.0.1:{hx.port('a')}", f"127.0.0.1:{hx.port('b')}"]
                client.exchange_instance_ip(v2.ExchangeInstanceIpRequest(
                    task_id=task_id, body=v2.IpExchangeRequest(exchanged_ip=fronts)))
            else:
                client.rollback_exchange_instance_ip(v2.RollbackExchangeInstanceIpRequest(task_id=task_id))
            _wait(lambda: show().task_status not in ("EXCHANGING", "ROLLBACKING"), 600, word)
            task = show()
            done = [m for m in logs(f"{word} done") if "writes paused" in m]
            said = done[0] if done else task.error_message
            print(f"task_status {task.task_status}, status {task.status}: {said}")
            asyncio.run(current.more(RATE))  # a second of writes after it
            result = current.stop()
            writers.remove(current)
            verdict = verify(lands.client(), result, prefix=f"demo:switch{n}")
            print(f"client: {result.writes:,} acknowledged writes ({result.rate:,.0f}/s), longest gap "
                  f"{result.max_gap * 1000:.1f} ms, {result.error_count} errors; on :{lands.port}: lost "
                  f"{len(verdict.lost)}, doubled {len(verdict.doubled)}")
            print(f"front a -> :{_at(hx.url('a'))}, front b -> :{_at(hx.url('b'))}")
            results.append((word, result, verdict))
            ok = ok and task.task_status == success and verdict.ok
            if n < len(plan):
                current = writer(n + 1)

        step("comparing every key (the reverse sync has carried the last writes to the source)")
        src_ep, tgt_ep = Endpoint.from_url(source.url), Endpoint.from_url(target.url)
        # Convergent (engine/verify.py): keys whose TTL runs out between the reads of the two
        # sides (step 2's writer set TTLs of 1-10 min) are read again, not counted as different.
        cmp = VerifyReport(mode="full")

        def equal() -> bool:
            nonlocal cmp
            cmp = asyncio.run(verify_keys(src_ep, tgt_ep))
            return cmp.ok

        try:
            _wait(equal, 120, "source and target to be equal")
        except RuntimeError:
            ok = False
        print(f"keys compared: {cmp.keys_compared:,}; mismatches {cmp.mismatches} ({cmp.by_kind}), "
              f"converged on a re-check {cmp.converged}")
        for m in cmp.examples[:10]:
            sides = [(s.client(db=m.db).type(m.key), s.client(db=m.db).pttl(m.key)) for s in (source, target)]
            print(f"  db {m.db} {m.key!r}: {m.kind.value} {m.reason}; (type, pttl) on source {sides[0]}, "
                  f"target {sides[1]}")
        client.delete_migration_task(v2.DeleteMigrationTaskRequest(
            body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id])))
        try:
            _wait(lambda: source.client().dbsize() == target.client().dbsize(), 60, "the markers to go")
        except RuntimeError:
            ok = False
        sizes = source.client().dbsize(), target.client().dbsize()
        print(f"task deleted: DBSIZE source {sizes[0]:,}, target {sizes[1]:,}")
        return ok and cmp.ok
    finally:
        for w in writers:
            w.stop()
        svc.stop()
        hx.stop()
