"""The leases of the distributed mode (service/db/leases.py) on PostgreSQL (a schema of our own):
of two claimers exactly one wins; a lease ends on the database's clock and can then be claimed
again; the old owner's writes (status, logs, checkpoints) and renewals are refused afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from cachemigrate.engine.checkpoint import Checkpoint
from cachemigrate.service import states as st
from cachemigrate.service.db import leases, repo
from cachemigrate.service.db.session import Database, make_engine, upgrade
from cachemigrate.service.runner import DbCheckpointStore, Fence
from support.pg import pg_schema


@pytest.fixture
def dbs() -> Iterator[tuple[Database, Database]]:
    """Two Database objects on one schema: two workers' own connection pools."""
    with pg_schema("lease") as (_, url):
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        a, b = Database(make_engine(url)), Database(make_engine(url))
        try:
            yield a, b
        finally:
            a.dispose()
            b.dispose()


def _task(db: Database, status: str = st.FULLMIGRATING) -> str:
    task = db.run_sync(repo.add_task, project_id="p", name="t", migration_type=st.ONLINE, status=status)
    return task.id


def test_two_claimers_one_winner(dbs: tuple[Database, Database]) -> None:
    a, b = dbs
    tasks = [_task(a) for _ in range(20)]
    wins: dict[str, list[str]] = {t: [] for t in tasks}
    for task_id in tasks:
        barrier = threading.Barrier(2)

        def claimer(
            db: Database, me: str, task_id: str = task_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            if db.run_sync(leases.claim, task_id=task_id, worker_id=me, lease_seconds=30) is not None:
                wins[task_id].append(me)

        threads = [threading.Thread(target=claimer, args=(db, me)) for db, me in ((a, "A"), (b, "B"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert all(len(w) == 1 for w in wins.values()), wins
    by = [w[0] for w in wins.values()]
    print(f"\n20 claim races: A won {by.count('A')}, B won {by.count('B')}, never both")
    # A finished task, a deleted one, one that needs no run: nobody claims them.
    done = _task(a, st.SUCCESS)
    assert a.run_sync(leases.claim, task_id=done, worker_id="A", lease_seconds=30) is None


def test_expired_lease_is_claimed_again_and_the_old_owner_is_fenced(dbs: tuple[Database, Database]) -> None:
    a, b = dbs
    task_id = _task(a)
    first = a.run_sync(leases.claim, task_id=task_id, worker_id="A", lease_seconds=30)
    assert first is not None and first.generation == 1
    assert b.run_sync(leases.claim, task_id=task_id, worker_id="B", lease_seconds=30) is None  # held
    assert a.run_sync(leases.live_owner, task_id=task_id) == "A"
    # A's fenced writes pass while the lease is its own.
    a.run_sync(leases.fenced, task_id=task_id, worker_id="A", generation=1, write=repo.update_task,
               kw={"task_id": task_id, "stats": {"by": "A"}})
    start = time.monotonic()
    assert a.run_sync(leases.renew, task_id=task_id, worker_id="A", generation=1, lease_seconds=1.0)
    second = None
    while second is None:  # the lease ends on the database's clock, then B's claim wins
        assert time.monotonic() - start < 20, "the 1 s lease never ended"
        second = b.run_sync(leases.claim, task_id=task_id, worker_id="B", lease_seconds=30)
        if second is None:
            time.sleep(0.05)
    waited = time.monotonic() - start
    assert second.generation == 2
    assert waited > 0.9, waited  # not before the renewed lease ended
    # A, a zombie now: its status write, its renewal and its release are refused; nothing changed.
    with pytest.raises(leases.LeaseLost):
        a.run_sync(leases.fenced, task_id=task_id, worker_id="A", generation=1, write=repo.set_status_if,
                   kw={"task_id": task_id, "allowed": [st.FULLMIGRATING], "status": st.FAILED})
    assert not a.run_sync(leases.renew, task_id=task_id, worker_id="A", generation=1, lease_seconds=30)
    assert not a.run_sync(leases.release, task_id=task_id, worker_id="A", generation=1)
    task = b.run_sync(repo.get_task, project_id=None, task_id=task_id)
    assert task is not None
    assert (task.status, task.run_by, task.lease_generation) == (st.FULLMIGRATING, "B", 2)
    assert task.stats == {"by": "A"}
    assert b.run_sync(leases.renew, task_id=task_id, worker_id="B", generation=2, lease_seconds=30)
    print(f"\na lease renewed for 1 s was claimed again {waited:.2f} s later; the old owner's "
          f"status write, renewal and release were refused")


async def test_a_fenced_checkpoint_store_refuses_a_stale_generation(dbs: tuple[Database, Database]) -> None:
    a, b = dbs
    task_id = _task(a)
    assert a.run_sync(leases.claim, task_id=task_id, worker_id="A", lease_seconds=0.3) is not None
    lost: list[str] = []
    store = DbCheckpointStore(a, task_id, Fence("A", 1, lambda: lost.append(task_id)))
    await store.save(Checkpoint(source="s:1", replid="r" * 40, offset=100))
    deadline = time.monotonic() + 10
    while b.run_sync(leases.claim, task_id=task_id, worker_id="B", lease_seconds=30) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(leases.LeaseLost):
        await store.save(Checkpoint(source="s:1", replid="r" * 40, offset=999))
    assert lost == [task_id]
    newer = DbCheckpointStore(b, task_id, Fence("B", 2, lambda: None))
    loaded = await newer.load()
    assert loaded is not None and loaded.offset == 100  # the zombie's save did not land
    # And the orphan sweep: a task with an ended lease and no run is found; one held is not.
    other = _task(a)
    assert other in a.run_sync(leases.orphans)
    assert task_id not in a.run_sync(leases.orphans)
