"""The distributed mode end to end: two `cachemigrate serve` and two `cachemigrate worker`
processes (the real CLI) on one PostgreSQL schema and one RabbitMQ queue, driven by the official
SDK against either serve.

* an online incremental task, an online full one and a backup-file import (file bucket), each run
  by exactly one worker (one claim: generation 1, one "claimed" line in all the workers' logs),
  every key compared;
* the worker that owns the incremental task SIGKILLed while a writer INCRs counters on the source:
  the other worker claims it once the lease ends (lease + sweep), resumes from the checkpoint and
  the exactly-once marker, and the target's counters equal the writer's own count;
* stop, restart and sync-stop through the serve that did not create the task reach the owner;
  status and logs read the same from both serves; `cachemigrate workers` and GET .../workers list
  the workers.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from conftest import Creds, signed
from support.compare import Comparison, compare_servers
from support.counters import CounterWriter
from support.distributed import PROJECT, Cluster, Proc, Serve, seconds
from support.poll import wait_until
from support.servers import RedisServer

KEYS = 3000


def seed(port: int, prefix: str, n: int = KEYS) -> None:
    with redis.Redis(port=port) as r:
        p = r.pipeline(transaction=False)
        for i in range(n):
            kind = i % 4
            if kind == 0:
                p.set(f"{prefix}:s:{i}", f"v{i}" * (i % 5 + 1))
            elif kind == 1:
                p.hset(f"{prefix}:h:{i}", mapping={"a": i, "b": "x"})
            elif kind == 2:
                p.rpush(f"{prefix}:l:{i}", *range(i % 4 + 1))
            else:
                p.zadd(f"{prefix}:z:{i}", {f"m{i}": i})
        p.execute()


class Api:
    """The SDK on one serve."""

    def __init__(self, sdk: Any, serve: Serve, creds: Creds) -> None:
        self.sdk, self.v2, self.serve, self.creds = sdk, sdk.v2, serve, creds
        self.client = sdk.client(serve.url, creds)

    def status(self, task_id: str) -> str:
        return str(self.client.show_migration_task(self.v2.ShowMigrationTaskRequest(task_id=task_id)).status)

    def logs(self, task_id: str) -> list[str]:
        request = self.v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=1000)
        res = self.client.list_migration_task_logs(request)
        return [f"{e.log_level} {e.log_code} {e.message}" for e in res.migration_logs]

    def instance(self, name: str, port: int) -> str:
        r = signed(self.serve, self.creds, "POST", f"/v2/{PROJECT}/instances",  # type: ignore[arg-type]
                   json_body={"name": name, "addrs": f"127.0.0.1:{port}"})
        assert r.status_code == 200, r.text
        return str(r.json()["instance_id"])

    def online(self, name: str, source: int, target_id: str, method: str) -> str:
        v2 = self.v2
        task_id = str(self.client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
            body=v2.CreateOnlineMigrationTaskBody(name=name, vpc_id="v", subnet_id="s", security_group_id="g")
        )).instance_id)
        wait_until(lambda: self.status(task_id) == "RUNNING", 30, what=f"{name} provisioned")
        self.client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
            task_id=task_id,
            body=v2.SetOnlineMigrationTaskBody(
                migration_method=method, resume_mode="auto",
                source_instance=v2.ConfigMigrationInstanceBody(addrs=f"127.0.0.1:{source}"),
                target_instance=v2.ConfigMigrationInstanceBody(id=target_id),
            ),
        ))
        return task_id

    def file_import(self, name: str, target_id: str, files: list[str]) -> str:
        v2 = self.v2
        res = self.client.create_migration_task(v2.CreateMigrationTaskRequest(body=v2.CreateMigrationTaskBody(
            task_name=name, migration_type="backupfile_import", migration_method="full_amount_migration",
            backup_files=v2.BackupFilesBody(file_source="self_build_obs", bucket_name="local",
                                            files=[v2.Files(file_name=f) for f in files]),
            target_instance=v2.TargetInstanceBody(id=target_id),
        )))
        return str(res.id)


def same(source: RedisServer, target: RedisServer) -> Comparison:
    report = compare_servers([source.client()], [target.client()])
    assert report.ok, report.summary(10)
    return report


def claims(workers: list[Proc], task_id: str) -> dict[str, int]:
    return {w.name: w.log().count(f"claimed task {task_id}") for w in workers}


def test_tasks_run_once_and_a_sigkilled_worker_is_replaced(
    tmp_path: Path, sdk: Any, redis_factory: Callable[..., RedisServer]
) -> None:
    started = time.monotonic()
    src_incr = redis_factory("src-incr", args=["--repl-diskless-sync-delay", "0",
                                               "--repl-backlog-size", "64mb"])
    src_full = redis_factory("src-full", args=["--repl-diskless-sync-delay", "0"])
    src_file = redis_factory("src-file")
    targets = {name: redis_factory(f"dst-{name}") for name in ("incr", "full", "file")}
    seed(src_incr.port, "incr")
    seed(src_full.port, "full")
    seed(src_file.port, "file")
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    shutil.copy(src_file.save(), bucket / "dump.rdb")
    buckets = {"local": {"url": f"file://{bucket}", "projects": [PROJECT]}}
    with Cluster(tmp_path, lease=8.0, heartbeat=1.0, buckets=buckets) as cluster:
        from support.servers import free_port

        metrics_port = free_port()
        s1, s2 = cluster.serve("s1"), cluster.serve("s2", CACHEMIGRATE_METRICS_PORT=str(metrics_port))
        w1, w2 = cluster.worker("w1"), cluster.worker("w2")
        workers = [w1, w2]
        cluster.ready(s1, s2, w1, w2)
        print(f"\n2 serves + 2 workers up in {seconds(started)} s")
        creds = Creds(*cluster.credentials())
        a1, a2 = Api(sdk, s1, creds), Api(sdk, s2, creds)
        ids = {"incr": a1.instance("dst-incr", targets["incr"].port),
               "full": a2.instance("dst-full", targets["full"].port),
               "file": a1.instance("dst-file", targets["file"].port)}
        incr = a1.online("incr", src_incr.port, ids["incr"], "incremental_migration")
        full = a2.online("full", src_full.port, ids["full"], "full_amount_migration")
        imp = a2.file_import("import", ids["file"], ["dump.rdb"])

        for task_id, api in ((full, a1), (imp, a1)):  # read through the serve that did not create it
            wait_until(lambda t=task_id, a=api: a.status(t) in ("SUCCESS", "FAILED"), 45,  # type: ignore[misc]
                       what=f"task {task_id} to end")
            assert api.status(task_id) == "SUCCESS", api.logs(task_id)
        ran: dict[str, str | None] = {}
        for label, task_id, source, target in (("full", full, src_full, targets["full"]),
                                               ("import", imp, src_file, targets["file"])):
            owner, generation = cluster.owner(task_id)
            assert generation == 1 and sum(claims(workers, task_id).values()) == 1, claims(workers, task_id)
            ran[label] = owner
            report = same(source, target)
            print(f"{label}: run by {owner} (claimed once), {report.compared} keys compared, "
                  f"{len(report.mismatches)} mismatches")
        assert a1.logs(full) == a2.logs(full)

        wait_until(lambda: a2.status(incr) == "INCRMIGEATING", 45, what="the incremental phase")
        writer = CounterWriter(src_incr.port, keys=40, pause=0.0005)
        writer.start()
        try:
            wait_until(lambda: writer.ops > 2000, 30, what="2000 INCRs")
            owner, generation = cluster.owner(incr)
            assert owner in ("w1", "w2") and generation == 1
            victim, survivor = (w1, w2) if owner == "w1" else (w2, w1)
            with targets["incr"].client() as t:
                wait_until(lambda: sum(int(v or 0) for v in t.mget(writer.keys)) > 1000, 30,
                           what="INCRs on the target")
            killed = time.monotonic()
            victim.kill()
            moved = wait_until(lambda: cluster.owner(incr) == (survivor.name, 2), 30, 0.05,
                               what="the other worker's claim")
            claimed_after = seconds(killed)
            assert moved
            with targets["incr"].client() as t:
                base = sum(int(v or 0) for v in t.mget(writer.keys))
                wait_until(lambda: sum(int(v or 0) for v in t.mget(writer.keys)) > base, 30, 0.05,
                           what="the survivor applying")
            applying_after = seconds(killed)
            wait_until(lambda: writer.ops > 3000 + 2000, 30, what="more INCRs")
        finally:
            ops = writer.stop()
        lost_doubled = (-1, -1)

        def exact() -> bool:
            nonlocal lost_doubled
            with targets["incr"].client() as t:
                lost_doubled = writer.lost_and_doubled(t)
            return lost_doubled == (0, 0)

        with contextlib.suppress(AssertionError):
            wait_until(exact, 30, 0.2, what="the target's counters to equal the writer's")
        with targets["incr"].client() as t:
            target_sum = sum(int(v or 0) for v in t.mget(writer.keys))
        assert lost_doubled == (0, 0), (lost_doubled, ops, target_sum)
        report = same(src_incr, targets["incr"])
        print(f"incremental: run by {victim.name}, SIGKILLed; {survivor.name} claimed it {claimed_after} s "
              f"later and applied again {applying_after} s after the kill "
              f"(lease {cluster.lease:g} s, sweep 1 s); "
              f"INCRs: writer {ops}, target {target_sum}, lost/doubled {lost_doubled}; "
              f"{report.compared} keys compared, {len(report.mismatches)} mismatches")
        assert claimed_after < cluster.lease + 3 * cluster.heartbeat + 5
        wait_until(lambda: any("resuming the migration on worker" in m for m in a1.logs(incr)), 10,
                   what="the resume's log line")

        # Control from the serve that did not create the task reaches the owner.
        stopped = a2.client.stop_migration_task(a2.v2.StopMigrationTaskRequest(task_id=incr))
        assert stopped.status in ("TERMINATING", "TERMINATED")
        wait_until(lambda: a1.status(incr) == "TERMINATED", 30, what="the stop")
        assert f"stop of task {incr} asked" in survivor.log()
        restart = a1.client.batch_restart_online_migration_tasks(
            a1.v2.BatchRestartOnlineMigrationTasksRequest(
                body=a1.v2.BatchRestartOnlineMigrationTasksBody(migration_tasks=[incr])))
        assert restart.migration_tasks[0].result == "success"
        wait_until(lambda: a2.status(incr) == "INCRMIGEATING", 45, what="the restart")
        assert cluster.owner(incr) == (survivor.name, 3)
        sync = a2.client.stop_migration_task_sync(a2.v2.StopMigrationTaskSyncRequest(task_id=incr))
        assert sync.status_code == 204
        assert a1.status(incr) == "TERMINATED"
        assert a1.logs(incr) == a2.logs(incr)
        same(src_incr, targets["incr"])

        listing = cluster.cli("workers")
        assert survivor.name in listing and victim.name in listing
        r = signed(s2, creds, "GET", f"/v2/{PROJECT}/workers")  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        seen = {w["worker_id"]: w for w in r.json()["workers"]}
        assert seen[survivor.name]["heartbeat_age_seconds"] < 5 and seen[survivor.name]["slots"] == 4
        assert seen[victim.name]["heartbeat_age_seconds"] > 2  # dead: its heartbeat ages
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert f'cachemigrate_worker_slots{{worker="{survivor.name}"}} 4.0' in metrics, metrics
        for name in ("units", "heartbeat_age_seconds", "keys_moved_total"):
            assert f'cachemigrate_worker_{name}{{worker="{victim.name}"}}' in metrics, (name, metrics)
        tasks_out = cluster.cli("tasks")
        assert survivor.name in tasks_out
        print(f"ran: full={ran['full']}, import={ran['import']}, incremental={victim.name} then "
              f"{survivor.name}; {seconds(started)} s in all")


def test_a_worker_cut_from_the_database_stops_applying_before_its_lease_ends(
    tmp_path: Path, sdk: Any, redis_factory: Callable[..., RedisServer]
) -> None:
    """Each worker reaches PostgreSQL through a relay; the owner's relay becomes a black hole while
    it runs an incremental task: the owner must stop applying before its lease (the last one it
    renewed) ends, the other worker claims the task after it ended and goes on, and the counters say
    no INCR was lost or doubled."""
    from support.relay import Relay

    started = time.monotonic()
    source = redis_factory("src", args=["--repl-diskless-sync-delay", "0", "--repl-backlog-size", "64mb"])
    target = redis_factory("dst")
    seed(source.port, "cut")
    with Cluster(tmp_path, lease=8.0, heartbeat=1.0) as cluster, \
            Relay(5432, delay=0.0, direction="requests") as relay1, \
            Relay(5432, delay=0.0, direction="requests") as relay2:
        # Each worker reaches PostgreSQL through a relay of its own: the owner's is cut.
        def via(relay: Relay) -> str:
            return cluster.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")

        s1 = cluster.serve("s1")
        workers = {"w1": (cluster.worker("w1", database_url=via(relay1)), relay1),
                   "w2": (cluster.worker("w2", database_url=via(relay2)), relay2)}
        cluster.ready(s1, *(w for w, _ in workers.values()))
        creds = Creds(*cluster.credentials())
        api = Api(sdk, s1, creds)
        target_id = api.instance("dst-cut", target.port)
        task_id = api.online("cut-db", source.port, target_id, "incremental_migration")
        wait_until(lambda: api.status(task_id) == "INCRMIGEATING", 45, what="the incremental phase")
        first, generation = cluster.owner(task_id)
        assert first in workers and generation == 1
        (cut_worker, relay), (other, _) = workers[first], next(v for k, v in workers.items() if k != first)
        writer = CounterWriter(source.port, keys=40, pause=0.0005)
        writer.start()

        def applied() -> int:
            with target.client() as t:
                return sum(int(v or 0) for v in t.mget(writer.keys))

        try:
            wait_until(lambda: applied() > 1000, 30, what="INCRs on the target")
            cut_wall = time.time()
            relay.cut()
            expiry: float = 0.0  # the lease the cut worker renewed last (the database's clock, this host)
            at_stop = None
            stopped_wall = None
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, cluster.logs()
                owner_rows = cluster.sql(
                    "SELECT run_by, lease_generation, extract(epoch from lease_expires_at) FROM tasks "
                    "WHERE id = %s", task_id)
                run_by, generation, ends = owner_rows[0]
                if run_by == cut_worker.name and ends is not None:
                    expiry = max(expiry, float(ends))
                if stopped_wall is None and "STOPPED APPLYING" in cut_worker.log():
                    line = next(x for x in cut_worker.log().splitlines() if "STOPPED APPLYING" in x)
                    stopped_wall = float(line.split(" at ")[1].split(":")[0])
                    time.sleep(0.3)  # writes in flight when it stopped have landed
                    at_stop = applied()
                if run_by == other.name:
                    claimed_wall = time.time()
                    break
                time.sleep(0.05)
            assert generation == 2
            assert stopped_wall is not None and at_stop is not None, cut_worker.log()[-3000:]
            # Between w2's stop and w1's claim nobody applied: the zombie wrote nothing more.
            before_claim = applied()
            assert before_claim == at_stop, (at_stop, before_claim)
            wait_until(lambda: applied() > before_claim, 30, 0.05, what="the other worker applying")
            resumed_wall = time.time()
            cut_for = time.time() - cut_wall
            time.sleep(max(0.0, cluster.lease + 1 - cut_for))  # a cut longer than the lease
            relay.heal()
            healed_after = time.time() - cut_wall
            wait_until(lambda: writer.ops > 3000 + writer.ops // 2, 30, what="more INCRs")
        finally:
            ops = writer.stop()
        lost_doubled = (-1, -1)

        def exact() -> bool:
            nonlocal lost_doubled
            with target.client() as t:
                lost_doubled = writer.lost_and_doubled(t)
            return lost_doubled == (0, 0)

        with contextlib.suppress(AssertionError):
            wait_until(exact, 30, 0.2, what="the target's counters to equal the writer's")
        total = applied()
        assert lost_doubled == (0, 0), (lost_doubled, ops, total)
        report = same(source, target)
        assert cluster.owner(task_id) == (other.name, 2)
        assert stopped_wall < expiry, (stopped_wall, expiry)
        assert claimed_wall >= expiry - 0.5
        print(f"\nDB cut of {cut_worker.name} (lease {cluster.lease:g} s, heartbeat 1 s): "
              "it stopped applying "
              f"{stopped_wall - cut_wall:.2f} s after the cut, {expiry - stopped_wall:.2f} s before its "
              f"lease ended ({expiry - cut_wall:.2f} s after the cut); {other.name} claimed "
              f"{claimed_wall - cut_wall:.2f} s and "
              f"applied again {resumed_wall - cut_wall:.2f} s after the cut; cut healed after "
              f"{healed_after:.1f} s; INCRs: writer {ops}, target {total}, lost/doubled {lost_doubled}; "
              f"{report.compared} keys compared, {len(report.mismatches)} mismatches; {seconds(started)} s")


async def test_exchange_and_rollback_through_either_serve_reach_the_owner(
    tmp_path: Path, sdk: Any, redis_factory: Callable[..., RedisServer]
) -> None:
    """exchange-ip through one serve and rollback-ip through the other reach the worker that runs
    the task (through tasks.switch_request); a client writing through the source's front all
    along loses and doubles nothing; stop through one serve and delete through the other leave no
    offset marker behind."""
    from support.front_writer import FrontWriter, verify
    from support.haproxy import SERVER, start_haproxy
    from support.poll import until

    started = time.monotonic()
    a = redis_factory("xa", args=["--repl-diskless-sync-delay", "0"])
    b = redis_factory("xb", args=["--repl-diskless-sync-delay", "0"])
    seed(a.port, "x", 500)
    hx = start_haproxy(tmp_path / "hx", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    try:
        with Cluster(tmp_path, lease=8.0, heartbeat=1.0) as cluster:
            extra = {"CACHEMIGRATE_FRONT_SOCKET_DIRS": str(tmp_path / "hx"),
                     "CACHEMIGRATE_EXCHANGE_VERIFY": "full", "CACHEMIGRATE_EXCHANGE_MAX_PAUSE_SECONDS": "10"}
            cluster.extra_env.update(extra)
            s1, s2, w1 = cluster.serve("s1"), cluster.serve("s2"), cluster.worker("w1")
            cluster.ready(s1, s2, w1)
            creds = Creds(*cluster.credentials())
            a1, a2 = Api(sdk, s1, creds), Api(sdk, s2, creds)
            ids = {}
            for name, server in (("a", a), ("b", b)):
                body = {"name": f"inst-{name}", "addrs": f"127.0.0.1:{server.port}",
                        "front": {"driver": "haproxy", "address": f"127.0.0.1:{hx.port(name)}",
                                  "runtime_api": str(hx.admin_socket), "server": f"back_{name}/{SERVER}"}}
                r = signed(s1, creds, "POST", f"/v2/{PROJECT}/instances", json_body=body)  # type: ignore[arg-type]
                assert r.status_code == 200, r.text
                ids[name] = str(r.json()["instance_id"])
            v2 = a1.v2
            task_id = str(a1.client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
                body=v2.CreateOnlineMigrationTaskBody(name="switch", vpc_id="v", subnet_id="s",
                                                      security_group_id="g"))).instance_id)
            wait_until(lambda: a1.status(task_id) == "RUNNING", 30, what="provisioned")
            a1.client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
                task_id=task_id, body=v2.SetOnlineMigrationTaskBody(
                    migration_method="incremental_migration", resume_mode="auto",
                    source_instance=v2.ConfigMigrationInstanceBody(id=ids["a"]),
                    target_instance=v2.ConfigMigrationInstanceBody(id=ids["b"]))))
            wait_until(lambda: a2.status(task_id) == "INCRMIGEATING", 45, what="the incremental phase")

            def task_status() -> str | None:
                res = a1.client.show_migration_task(v2.ShowMigrationTaskRequest(task_id=task_id))
                return res.task_status  # type: ignore[no-any-return]

            writer = FrontWriter(hx.port("a")).start()
            try:
                await writer.more(300)
                a2.client.exchange_instance_ip(v2.ExchangeInstanceIpRequest(
                    task_id=task_id, body=v2.IpExchangeRequest(
                        exchanged_ip=[f"127.0.0.1:{hx.port('a')}", f"127.0.0.1:{hx.port('b')}"],
                        is_exchange_domain=False)))
                await until(lambda: task_status() in ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED"), 60)
                assert task_status() == "EXCHANGE_SUCCESS", a1.logs(task_id)
                assert a1.status(task_id) == "TERMINATED"
                await writer.more(300)
                a1.client.rollback_exchange_instance_ip(v2.RollbackExchangeInstanceIpRequest(task_id=task_id))
                await until(lambda: task_status() in ("ROLLBACK_SUCCESS", "ROLLBACK_FAILED"), 60)
                assert task_status() == "ROLLBACK_SUCCESS", a1.logs(task_id)
                assert a2.status(task_id) == "INCRMIGEATING"
                await writer.more(300)
            finally:
                result = writer.stop()
            verdict = verify(b.client(), result)
            assert verdict.ok, verdict
            wait_until(lambda: compare_servers([a.client()], [b.client()]).ok, 30, what="a and b equal")
            log = a2.logs(task_id)
            assert any("exchange-ip done: writes paused" in m for m in log), log
            assert any("rollback-ip done: writes paused" in m for m in log), log
            assert cluster.owner(task_id)[0] == "w1"
            # Stop through s2, delete through s1: no offset marker left on either server.
            a2.client.stop_migration_task_sync(v2.StopMigrationTaskSyncRequest(task_id=task_id))
            assert a1.status(task_id) == "TERMINATED"
            a1.client.delete_migration_task(v2.DeleteMigrationTaskRequest(
                body=v2.DeleteMigrateTaskRequest(task_id_list=[task_id])))

            def markers() -> list[bytes]:
                return [k for srv in (a, b) for k in srv.client().keys("__cachemigrate:offset:*")]

            wait_until(lambda: not markers(), 30, what="the offset markers removed")
            print(f"\nexchange-ip via s2, rollback-ip via s1, run on w1: {result.writes} writes, lost "
                  f"{len(verdict.lost)}, doubled {len(verdict.doubled)}; {seconds(started)} s")
    finally:
        hx.stop()
