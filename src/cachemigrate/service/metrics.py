"""Prometheus metrics: tasks by status, keys and bytes moved, replication lag per task.

They name tasks of every project, so they are for the operator: ``metrics_app`` is served on its
own listener (``metrics_host``/``metrics_port``, loopback by default; service/serving.py), never
on the tenant-facing API port.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio.to_thread
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cachemigrate.service.db import leases, repo
from cachemigrate.service.db.session import Database
from cachemigrate.service.runner import Runner


class ServiceCollector(Collector):
    """Reads the database and the runner at scrape time; keeps no state of its own."""

    def __init__(self, db: Database, runner: Runner) -> None:
        self.db = db
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily("cachemigrate_tasks", "Migration tasks by status", labels=["status"])
        for status, n in sorted(self.db.run_sync(repo.status_counts).items()):
            tasks.add_metric([status], n)
        yield tasks
        yield GaugeMetricFamily(
            "cachemigrate_tasks_executing", "Pipelines executing in this process", value=len(self.runner.runs)
        )
        yield CounterMetricFamily(
            "cachemigrate_keys_moved", "Keys written to targets by this process", value=self.runner.keys_moved
        )
        yield CounterMetricFamily(
            "cachemigrate_bytes_moved",
            "Bytes written to targets by this process",
            value=self.runner.bytes_moved,
        )
        lag_bytes = GaugeMetricFamily(
            "cachemigrate_task_lag_bytes",
            "Replication offset not yet applied to the target",
            labels=["task_id"],
        )
        lag_seconds = GaugeMetricFamily(
            "cachemigrate_task_lag_seconds", "Seconds the target is behind the source", labels=["task_id"]
        )
        for task_id in list(self.runner.runs):
            snap = self.runner.snapshot(task_id)
            if snap is None:
                continue
            if snap.offset_lag_bytes is not None:
                lag_bytes.add_metric([task_id], snap.offset_lag_bytes)
            if snap.lag_seconds is not None:
                lag_seconds.add_metric([task_id], snap.lag_seconds)
        yield lag_bytes
        yield lag_seconds
        yield from self._workers()

    def _workers(self) -> Iterator[Metric]:
        """Per worker of the distributed mode (the workers table its heartbeat writes)."""
        rows = self.db.run_sync(leases.list_workers)
        labels = ["worker"]
        age = GaugeMetricFamily("cachemigrate_worker_heartbeat_age_seconds",
                                "Seconds since the worker's last heartbeat (the database's clock)",
                                labels=labels)
        units = GaugeMetricFamily("cachemigrate_worker_units", "Units (tasks) the worker runs", labels=labels)
        slots = GaugeMetricFamily("cachemigrate_worker_slots", "Units the worker runs at most", labels=labels)
        keys = CounterMetricFamily("cachemigrate_worker_keys_moved",
                                   "Keys written to targets by the worker since it started", labels=labels)
        nbytes = CounterMetricFamily("cachemigrate_worker_bytes_moved",
                                     "Bytes written to targets by the worker since it started", labels=labels)
        for w in rows:
            if w.stopped:
                continue
            age.add_metric([w.id], w.heartbeat_age)
            units.add_metric([w.id], len(w.units))
            slots.add_metric([w.id], w.slots)
            keys.add_metric([w.id], w.keys_moved)
            nbytes.add_metric([w.id], w.bytes_moved)
        yield from (age, units, slots, keys, nbytes)


def make_registry(db: Database, runner: Runner) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(db, runner))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """The operator's listener: GET /metrics (the scrape reads the database off the event loop)."""

    async def scrape(_request: Request) -> Response:
        body = await anyio.to_thread.run_sync(render, registry)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")  # generate_latest's

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])
