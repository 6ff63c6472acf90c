"""exchange-ip and rollback-ip through the official SDK against a running service, with real
redis-servers behind a real haproxy and a client writing through the source's front all along:
no acknowledged write lost or doubled, the servers equal (tests/support/compare.py), no key left
behind; and the ways a switch is refused or fails with nothing moved."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_verifications import run_verification

from conftest import LiveService, make_settings, signed, wait_for
from support.compare import compare_servers
from support.front_writer import FrontWriter, verify
from support.haproxy import SERVER, HAProxy, start_haproxy
from support.servers import RedisServer

FAST = ["--repl-diskless-sync-delay", "0"]


@dataclass
class Env:
    live: LiveService
    creds: Any
    client: Any
    v2: Any
    a: RedisServer  # the source
    b: RedisServer  # the target
    hx: HAProxy
    ids: dict[str, str]  # "a"/"b" -> instance id
    sdk: Any

    def front_address(self, name: str) -> str:
        return f"127.0.0.1:{self.hx.port(name)}"


def register(live: LiveService, creds: Any, name: str, server: RedisServer, hx: HAProxy | None) -> str:
    body: dict[str, Any] = {"name": f"inst-{name}", "addrs": f"127.0.0.1:{server.port}"}
    if hx is not None:
        body["front"] = {"driver": "haproxy", "address": f"127.0.0.1:{hx.port(name)}",
                         "runtime_api": str(hx.admin_socket), "server": f"back_{name}/{SERVER}"}
    r = signed(live, creds, "POST", f"/v2/{creds.project_id}/instances", json_body=body)
    assert r.status_code == 200, r.text
    return str(r.json()["instance_id"])


@pytest.fixture
def env(tmp_path: Path, service_factory: Any, sdk: Any, redis_factory: Any) -> Iterator[Env]:
    a, b = redis_factory("xa", args=FAST), redis_factory("xb", args=FAST)
    hx = start_haproxy(tmp_path / "hx", {"a": ("127.0.0.1", a.port), "b": ("127.0.0.1", b.port)})
    try:
        live = service_factory(make_settings(tmp_path, front_socket_dirs=[tmp_path / "hx"],
                                             exchange_verify="full", exchange_max_pause_seconds=10))
        creds = live.credentials()
        ids = {"a": register(live, creds, "a", a, hx), "b": register(live, creds, "b", b, hx)}
        yield Env(live, creds, sdk.client(live.url, creds), sdk.v2, a, b, hx, ids, sdk)
    finally:
        hx.stop()


def seed(server: RedisServer, n: int = 500) -> None:
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(n):
        p.set(f"k:{i}", i)
    p.hset("h", mapping={"f": "v"})
    p.rpush("l", 1, 2, 3)
    p.zadd("z", {"m": 1})
    p.set("ttl", "x", ex=3600)
    p.execute()


def start_task(e: Env, method: str = "incremental_migration", name: str = "exchange-task") -> str:
    v2 = e.v2
    task_id = str(e.client.create_online_migration_task(v2.CreateOnlineMigrationTaskRequest(
        body=v2.CreateOnlineMigrationTaskBody(name=name, vpc_id="v", subnet_id="s", security_group_id="g")
    )).instance_id)
    e.client.set_online_migration_task(v2.SetOnlineMigrationTaskRequest(
        task_id=task_id,
        body=v2.SetOnlineMigrationTaskBody(
            migration_method=method, resume_mode="auto",
            source_instance=v2.ConfigMigrationInstanceBody(id=e.ids["a"]),
            target_instance=v2.ConfigMigrationInstanceBody(id=e.ids["b"]),
        ),
    ))
    return task_id


def show(e: Env, task_id: str) -> Any:
    return e.client.show_migration_task(e.v2.ShowMigrationTaskRequest(task_id=task_id))


def messages(e: Env, task_id: str) -> list[str]:
    logs = e.client.list_migration_task_logs(e.v2.ListMigrationTaskLogsRequest(task_id=task_id, limit=200))
    return [f"{x.log_level} {x.log_code} {x.message}" for x in logs.migration_logs]


def wait_status(e: Env, task_id: str, status: str) -> None:
    wait_for(lambda: show(e, task_id).status in (status, "FAILED"), timeout=60)
    assert show(e, task_id).status == status, messages(e, task_id)


def exchange(e: Env, task_id: str, ips: list[str]) -> None:
    e.client.exchange_instance_ip(e.v2.ExchangeInstanceIpRequest(
        task_id=task_id, body=e.v2.IpExchangeRequest(exchanged_ip=ips, is_exchange_domain=False)))


def rollback(e: Env, task_id: str) -> None:
    e.client.rollback_exchange_instance_ip(e.v2.RollbackExchangeInstanceIpRequest(task_id=task_id))


def settle(e: Env, task_id: str, ending: tuple[str, ...]) -> str:
    """Until the switch has ended; its task_status."""
    wait_for(lambda: show(e, task_id).task_status in ending, timeout=120)
    return str(show(e, task_id).task_status)


async def backends(e: Env) -> list[int]:
    from cachemigrate.engine.fronts import open_front

    return [(await open_front(e.hx.url(n)).backend()).port for n in ("a", "b")]


def keys(server: RedisServer) -> set[bytes]:
    return set(server.client().keys("*"))


def equal(e: Env) -> bool:
    return compare_servers([e.a.client()], [e.b.client()]).ok


async def test_exchange_rollback_and_exchange_again_lose_nothing(env: Env) -> None:
    e = env
    seed(e.a)
    task_id = start_task(e)
    wait_status(e, task_id, "INCRMIGEATING")
    writer = FrontWriter(e.hx.port("a")).start()
    try:
        await writer.more(300)
        exchange(e, task_id, [e.front_address("a"), e.front_address("b")])
        assert show(e, task_id).task_status in ("EXCHANGING", "EXCHANGE_SUCCESS")
        assert settle(e, task_id, ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED")) == "EXCHANGE_SUCCESS", \
            messages(e, task_id)
        assert show(e, task_id).status == "TERMINATED"  # spec §9.5
        assert await backends(e) == [e.b.port, e.a.port]
        with pytest.raises(e.sdk.ClientRequestException) as exc:  # exchanged already
            exchange(e, task_id, [e.front_address("a")])
        assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4957")
        await writer.more(300)  # on b now; the reverse sync carries them to a
        # No trace left: the target holds no key the source does not (the forward marker went);
        # the source holds one more, the marker of the reverse sync that runs now.
        wait_for(lambda: keys(e.b) <= keys(e.a), timeout=30)
        extra = keys(e.a) - keys(e.b)
        assert extra == {f"__cachemigrate:offset:{{127.0.0.1:{e.b.port}}}".encode()}, extra
        # Exchanged, a repair goes the way the data flows now: the source is repaired from the
        # target, the target (which takes the writes) is not touched.
        e.a.client().set("k:3", "changed on the old source")
        report = run_verification(e.live, e.creds, task_id, mode="full", repair=True)["report"]
        assert report["repaired"] == 1 and report["ok"] is True, report
        assert e.a.client().get("k:3") == e.b.client().get("k:3") == b"3"

        rollback(e, task_id)
        assert settle(e, task_id, ("ROLLBACK_SUCCESS", "ROLLBACK_FAILED")) == "ROLLBACK_SUCCESS", \
            messages(e, task_id)
        assert show(e, task_id).status == "INCRMIGEATING"
        assert await backends(e) == [e.a.port, e.b.port]
        await writer.more(300)

        exchange(e, task_id, ["127.0.0.1"])  # a host names both fronts
        assert settle(e, task_id, ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED")) == "EXCHANGE_SUCCESS", \
            messages(e, task_id)
        assert await backends(e) == [e.b.port, e.a.port]
        await writer.more(300)
    finally:
        result = writer.stop()
    verdict = verify(e.b.client(), result)
    print(f"\n{result.writes} writes at {result.rate:.0f}/s, longest gap {result.max_gap * 1000:.1f} ms, "
          f"{result.error_count} errors; lost {len(verdict.lost)}, doubled {len(verdict.doubled)}")
    assert verdict.acknowledged == result.steps >= 1200
    assert verdict.ok, verdict
    wait_for(lambda: equal(e), timeout=60)  # the reverse sync has carried everything to a
    assert verify(e.a.client(), result).ok

    log = messages(e, task_id)
    assert sum("exchange-ip done: writes paused" in m for m in log) == 2, log
    assert any("rollback-ip done: writes paused" in m for m in log), log
    assert any("verification gate passed" in m for m in log), log
    # Each switch started the other direction where its pause fixed it (+CONTINUE): no full copy,
    # which would flush the server that takes the reverse writes, and no older marker replayed.
    assert sum("(+CONTINUE)" in m for m in log) == 3, log
    assert not [m for m in log if "FULLRESYNC" in m or "offset marker" in m], log

    # Deleted: both markers go; source and target hold the same keys.
    e.client.delete_migration_task(e.v2.DeleteMigrationTaskRequest(
        body=e.v2.DeleteMigrateTaskRequest(task_id_list=[task_id])))
    wait_for(lambda: keys(e.a) == keys(e.b), timeout=30)
    assert e.a.client().dbsize() == e.b.client().dbsize()
    e.a.client().set("after-delete", 1)  # nothing syncs any more
    assert e.b.client().get("after-delete") is None


async def test_refusals_and_failures_move_nothing(env: Env, sdk: Any) -> None:
    e = env
    seed(e.a)
    task_id = start_task(e)
    wait_status(e, task_id, "INCRMIGEATING")
    wait_for(lambda: equal(e), timeout=30)

    def refused(call: Any, code: str) -> str:
        with pytest.raises(sdk.ClientRequestException) as exc:
            call()
        assert (exc.value.status_code, exc.value.error_code) == (400, code), exc.value.error_msg
        return str(exc.value.error_msg)

    # Wrong state: nothing was exchanged, so there is nothing to roll back.
    refused(lambda: rollback(e, task_id), "DCS.4957")
    # An address that is no front of the task's instances; the target's front alone.
    assert "10.9.8.7" in refused(lambda: exchange(e, task_id, ["10.9.8.7"]), "DCS.4063")
    assert "source" in refused(lambda: exchange(e, task_id, [e.front_address("b")]), "DCS.4063")
    # Another project's task is unknown to it.
    other = e.live.credentials("fedcba9876543210fedcba9876543210")
    foreign = sdk.client(e.live.url, other)
    with pytest.raises(sdk.ClientRequestException) as exc:
        foreign.exchange_instance_ip(e.v2.ExchangeInstanceIpRequest(
            task_id=task_id, body=e.v2.IpExchangeRequest(exchanged_ip=["127.0.0.1"])))
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4133")
    with pytest.raises(sdk.ClientRequestException) as exc:
        foreign.rollback_exchange_instance_ip(e.v2.RollbackExchangeInstanceIpRequest(task_id=task_id))
    assert (exc.value.status_code, exc.value.error_code) == (400, "DCS.4133")
    assert show(e, task_id).task_status is None

    # The gate: a key changed on the target behind the migrator's back fails the exchange.
    e.b.client().set("k:7", "tampered")
    exchange(e, task_id, [e.front_address("a")])
    assert settle(e, task_id, ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED")) == "EXCHANGE_FAILED"
    failed = show(e, task_id)
    assert failed.status == "INCRMIGEATING"
    assert await backends(e) == [e.a.port, e.b.port]
    gate = [m for m in messages(e, task_id) if "verification gate" in m]
    assert gate and "1 differ (value 1)" in gate[0], gate
    e.a.client().set("still-migrating", 1)  # the migration goes on
    wait_for(lambda: e.b.client().get("still-migrating") == b"1", timeout=30)

    # Repaired, then the front cannot be reached: EXCHANGE_FAILED, nothing moved.
    e.b.client().set("k:7", "7")
    e.hx.stop()
    exchange(e, task_id, [e.front_address("a")])
    assert settle(e, task_id, ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED")) == "EXCHANGE_FAILED"
    assert show(e, task_id).status == "INCRMIGEATING"
    errors = [m for m in messages(e, task_id) if m.startswith("ERROR")]
    assert any("Runtime API" in m for m in errors), errors
    e.a.client().set("after-front-failure", 1)
    wait_for(lambda: e.b.client().get("after-front-failure") == b"1", timeout=30)
    assert equal(e)


async def test_the_reverse_sync_resumes_after_a_service_restart(env: Env, service_factory: Any) -> None:
    """Exchanged, the service restarts: the reverse sync goes on from its checkpoint in the
    database (exactly once: the writer's sequence is whole on a), and rollback-ip works."""
    e = env
    seed(e.a)
    task_id = start_task(e)
    wait_status(e, task_id, "INCRMIGEATING")
    writer = FrontWriter(e.hx.port("a")).start()
    try:
        await writer.more(200)
        exchange(e, task_id, [e.front_address("a")])
        assert settle(e, task_id, ("EXCHANGE_SUCCESS", "EXCHANGE_FAILED")) == "EXCHANGE_SUCCESS", \
            messages(e, task_id)
        await writer.more(200)
        e.live.stop()
        await writer.more(200)  # written to b while no service runs
        e.live = service_factory(e.live.settings)
        e.client = e.sdk.client(e.live.url, e.creds)
        assert show(e, task_id).task_status == "EXCHANGE_SUCCESS"
        wait_for(lambda: any("resuming the reverse sync" in m for m in messages(e, task_id)), timeout=30)
        await writer.more(200)
        wait_for(lambda: e.a.client().get("cutover:counter") == e.b.client().get("cutover:counter"), 60)
        rollback(e, task_id)
        assert settle(e, task_id, ("ROLLBACK_SUCCESS", "ROLLBACK_FAILED")) == "ROLLBACK_SUCCESS", \
            messages(e, task_id)
        await writer.more(200)
    finally:
        result = writer.stop()
    assert verify(e.a.client(), result).ok, verify(e.a.client(), result)
    wait_for(lambda: equal(e), timeout=60)
    assert verify(e.b.client(), result).ok


def test_a_restart_during_exchange_ip_settles_it_by_the_checkpoint(env: Env, service_factory: Any) -> None:
    """The service stopped while task_status was EXCHANGING and before the reverse sync's start
    was saved: at the next start the exchange is EXCHANGE_FAILED (the checkpoint is still the
    migration's own) and the migration source -> target goes on."""
    from cachemigrate.service.db import repo

    e = env
    seed(e.a)
    task_id = start_task(e)
    wait_status(e, task_id, "INCRMIGEATING")
    e.live.stop()
    e.live.services.db.run_sync(repo.update_task, task_id=task_id, task_status="EXCHANGING")
    e.live = service_factory(e.live.settings)
    e.client = e.sdk.client(e.live.url, e.creds)
    assert settle(e, task_id, ("EXCHANGE_FAILED", "EXCHANGE_SUCCESS")) == "EXCHANGE_FAILED"
    assert show(e, task_id).status == "INCRMIGEATING"
    log = messages(e, task_id)
    assert any("restarted during exchange-ip: failed" in m for m in log), log
    e.a.client().set("after-restart", 1)
    wait_for(lambda: e.b.client().get("after-restart") == b"1", timeout=30)


def test_a_front_is_validated_at_registration(env: Env) -> None:
    e = env
    path = f"/v2/{e.creds.project_id}/instances"
    base = {"name": "inst-bad", "addrs": f"127.0.0.1:{e.a.port}"}
    good = {"driver": "haproxy", "address": e.front_address("a"), "runtime_api": str(e.hx.admin_socket),
            "server": f"back_a/{SERVER}"}
    for change, field in (
        ({"driver": "nginx"}, "front.driver"),
        ({"server": "no-slash"}, "front.server"),
        ({"address": "nowhere"}, "front.address"),
        ({"server": "back_a/other"}, "front"),  # no such server
        ({"runtime_api": "/run/elsewhere/admin.sock"}, "front"),  # not in front_socket_dirs
        ({"runtime_api": "10.255.255.1:9999"}, "front"),  # outside the allowed networks
    ):
        r = signed(e.live, e.creds, "POST", path, json_body={**base, "front": {**good, **change}})
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "DCS.4063" and field in r.json()["error_msg"], r.text
    shown = signed(e.live, e.creds, "GET", f"{path}/{e.ids['a']}")
    assert shown.status_code == 200 and shown.json()["front"] == good, shown.text
    doc = signed(e.live, e.creds, "GET", "/openapi.json")
    assert "FrontBody" in doc.text and "front_socket_dirs" in doc.text


def test_a_finished_full_migration_leaves_no_key(env: Env) -> None:
    e = env
    seed(e.a)
    task_id = start_task(e, "full_amount_migration", "full-only")
    wait_status(e, task_id, "SUCCESS")
    assert keys(e.a) == keys(e.b) and e.a.client().dbsize() == e.b.client().dbsize() == 504
