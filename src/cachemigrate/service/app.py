"""``create_app(settings)``: the DCS v2-compatible migration service. Nothing is built at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from cachemigrate import __version__
from cachemigrate.service import console, metrics
from cachemigrate.service.api import errors
from cachemigrate.service.api.body_limit import BodyLimitMiddleware
from cachemigrate.service.api.deps import Services, storable_parameters
from cachemigrate.service.api.routes import (
    backups,
    instances,
    jobs,
    migration_tasks,
    online_migration,
    tokens,
    verifications,
    workers,
)
from cachemigrate.service.backups import BackupService
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db.session import Database, make_engine, upgrade
from cachemigrate.service.distributed import DispatchingRunner
from cachemigrate.service.file_import import FileByFileExecutor
from cachemigrate.service.runner import Executor, Runner, engine_executor
from cachemigrate.service.settings import Settings
from cachemigrate.service.specs import SpecBuilder
from cachemigrate.service.switching import Switcher
from cachemigrate.service.tasks import TaskService
from cachemigrate.service.verifications import VerificationService

log = logging.getLogger(__name__)

DESCRIPTION = """\
Data migration for Redis-compatible caches behind the Huawei Cloud DCS v2 data-migration API:
the official `huaweicloudsdkdcs` SDK drives it unchanged (SDK-HMAC-SHA256 signed requests).

* Unknown or deleted task: 400 `DCS.4133`. Wrong state: 400 `DCS.4957`.
* Statuses: CREATING, RUNNING, MIGRATING, FULLMIGRATING, INCRMIGEATING (sic), TERMINATING,
  TERMINATED, SUCCESS, FAILED.
* `supported_features`: `full`, `incremental`, `resume`, `bandwidth_limit`, `ip_exchange`, `verify`.
* `log_code`: `migration.full.start`, `migration.full.done`, `migration.incr.start`,
  `migration.resume`, `migration.restart`, `migration.stop`, `migration.event`, `migration.warn`,
  `migration.exchange[.done|.failed]`, `migration.rollback[.done|.failed]`,
  `migration.error.<kind>` (auth, connection, resume, format, protocol, incompatible, server, config,
  internal, interrupted, migration).
* exchange-ip / rollback-ip: an instance registered with a `front` (our extension: an HAProxy
  `server` slot its clients connect through, driven by its Runtime API; a unix socket only in the
  operator's `front_socket_dirs`, a `host:port` only inside the project's networks) can have its
  clients moved without losing a write: `task_status` EXCHANGING → EXCHANGE_SUCCESS (status
  TERMINATED, spec §9.5; the reverse sync target → source runs, also across a restart of the
  service) or EXCHANGE_FAILED (nothing moved, the migration goes on); ROLLBACKING →
  ROLLBACK_SUCCESS (status INCRMIGEATING again) or ROLLBACK_FAILED. Before the pause a
  verification gate (`exchange_verify`: sampled, full, off) must find no difference; the pause
  is bounded (`exchange_max_pause_seconds`). While a switch runs, stop and delete are 400
  `DCS.4957`; once exchanged, restart and set_online are too (the writes go to the target);
  stop of an exchanged task is the idempotent success of a TERMINATED one (delete ends the
  reverse sync).
* Request bodies: at most `max_body_bytes` (default 1 MiB); a larger one is 413 `APIG.0201`,
  answered before the body is read (a `Content-Length` over the limit at once, a chunked body as
  soon as it passes it).
* Quotas per project (`max_tasks_per_project`, `max_instances_per_project`,
  `max_backups_per_project`): one more is 400 `DCS.4039`; deleting one frees its place.
* Passwords are write-only: never returned, never logged, encrypted at rest.
* Endpoints (`POST .../instances`, `source_instance`, `target_instance`): `addrs` is
  `host:port[,host:port...]` (IPv6 in brackets; ports, `db` and `bandwidth_limit_mb` are ASCII
  digits). Extensions, named as in the DCS instance models: `enable_ssl` (TLS, what `rediss://`
  says in a URL), `ssl_verify` (with `enable_ssl`; false accepts a self-signed certificate) and
  `access_user` (the ACL user to log in as). Every endpoint is reached before it is accepted:
  400 `DCS.4080` when it refuses the password or user, 400 `DCS.4063` "the instance cannot be
  reached" otherwise. The service connects only inside the networks its operator allows (for
  the project): an address outside them is refused before any packet is sent, and answered in
  the same words as a closed port, a silent one or one that does not speak Redis.
* Backup imports (`backupfile_import`): `self_build_obs` reads `bucket_name`/`files` from a
  configured bucket (`file://` directory or `s3://` store; .rdb, .aof, multi-part .manifest, .zip,
  .tar.gz), one file after the other, each with its own log lines; a missing object, refused
  credentials or an unsupported file end the task FAILED with a message naming the file.
  A bucket serves only the projects bound to it (`projects` in the bucket's settings); another
  project's bucket answers exactly like one that does not exist. Every file an import opens (the
  names in `files`, the files a manifest lists, a directory's manifest, archive members and their
  links) stays inside the bucket after symlinks are resolved; names are bucket-relative (no `..`
  part, no part over 255 bytes), at most 1000 in `files`, none twice. A name that leaves the
  bucket, a symlink loop, a missing file or a directory where a file is expected is 400
  `DCS.4063` when the task is created (an archive member: the task FAILED); messages and task
  logs name files bucket-relative, never by the server's paths.
  `backup_record` imports a backup taken by `POST .../instances/{instance_id}/backups` (the SDK's
  `copy_instance`; an RDB fetched over replication) and listed by `list_backup_records`; an
  unknown, foreign or unfinished backup is 400 `DCS.4087`. Record `error_code`: `dcs.08.0001`
  (the backup could not be taken), `dcs.08.0004` (the store refused the credentials).
  `DELETE .../instances/{instance_id}/backups/{backup_id}` (the SDK's `delete_backup_file`)
  deletes one, file and record: 204; 400 `DCS.4096` while it is taken, 400 `DCS.4097` while a
  running import reads it. Retention (`backup_retention_count` = N > 0): when a backup
  succeeds, its instance keeps the N newest succeeded backups and the older ones are deleted.
* Verifications (a cachemigrate extension, not in the SDK: signed requests):
  `POST .../migration-task/{task_id}/verifications` compares an online task's target with its
  live source (full or sampled, re-checks, optional repair) in the background: 202 with its id;
  `GET .../verifications/{verification_id}` shows its status (RUNNING, SUCCESS, FAILED) and report;
  `GET .../verifications` lists them. A task without a live source is 400 `DCS.4957`.
* Distributed mode (`CACHEMIGRATE_EXECUTION_MODE=distributed`; a cachemigrate extension): tasks run
  on `cachemigrate worker` processes under a lease; `run_by` in a task's details names the worker
  that runs it (or ran it last); `GET /v2/{project_id}/workers` lists the workers (heartbeat age,
  slots, load, this project's tasks on each). Any serve answers for any task.
"""


class DcsApp(FastAPI):
    """FastAPI whose OpenAPI document says what the service answers: validation failures are DCS
    400s here (api/errors.py), never FastAPI's 422."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()  # built once and kept in self.openapi_schema
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return self.openapi_schema or {}


def _open(settings: Settings) -> tuple[Cipher, Database, BackupService]:
    for name in settings.check_buckets():  # ConfigError: a bad URL, a bound bucket over our files
        log.warning("bucket %r is bound to no project: no import can read it (set its \"projects\")", name)
    settings.check_distributed()  # ConfigError: distributed without PostgreSQL or a broker
    cipher = Cipher.from_settings(settings)  # refuses to start without a key (unless dev_mode)
    engine = make_engine(settings.sqlalchemy_url())
    upgrade(engine)
    db = Database(engine)
    return cipher, db, BackupService(db, settings, cipher)


def build_runner(settings: Settings) -> tuple[Runner, Database]:
    """The runner of a `cachemigrate worker` (service/worker.py): the in-process engine."""
    cipher, db, backups = _open(settings)
    runner = Runner(
        db,
        build_spec=SpecBuilder(db, settings, cipher, backups),
        executor=FileByFileExecutor(engine_executor),
        interval=settings.status_interval_seconds,
        stop_grace=settings.stop_grace_seconds,
        live=True,
    )
    runner.switcher = Switcher(db, settings, cipher)
    return runner, db


def build_services(settings: Settings, executor: Executor | None = None) -> Services:
    cipher, db, backups = _open(settings)
    build = SpecBuilder(db, settings, cipher, backups)
    runner: Runner
    if settings.execution_mode == "distributed":
        # Tasks run on the workers (service/distributed.py): this process only dispatches.
        runner = DispatchingRunner(
            db, settings, build_spec=build, executor=FileByFileExecutor(engine_executor)
        )
    else:
        runner = Runner(
            db,
            build_spec=build,
            executor=FileByFileExecutor(executor or engine_executor),
            interval=settings.status_interval_seconds,
            stop_grace=settings.stop_grace_seconds,
            live=executor is None,
        )
    runner.switcher = Switcher(db, settings, cipher)
    tasks = TaskService(db, settings, cipher, runner, backups)
    return Services(
        settings=settings,
        db=db,
        cipher=cipher,
        runner=runner,
        tasks=tasks,
        backups=backups,
        verifications=VerificationService(db, settings, cipher, tasks),
        registry=metrics.make_registry(db, runner),
        version=__version__,
    )


def create_app(settings: Settings, *, executor: Executor | None = None) -> FastAPI:
    services = build_services(settings, executor)
    if settings.loopback_exposed():
        log.warning(
            "the service listens on %s and allowed_networks (%s) include loopback: callers from "
            "other hosts can make it connect to this host's own servers; set "
            "CACHEMIGRATE_ALLOWED_NETWORKS to the networks the caches are in",
            settings.host, ", ".join(settings.allowed_networks),
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.execution_mode == "embedded":  # (another serve may be running them)
            await services.backups.fail_interrupted()
            await services.verifications.fail_interrupted()
        await services.runner.resume_all()
        try:
            yield
        finally:
            await services.backups.close()
            await services.verifications.close()
            await services.runner.close()
            services.db.dispose()

    app = DcsApp(
        title="cachemigrate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=errors.DcsJSONResponse,
    )
    app.state.services = services
    errors.install(app)
    # Added first, so it runs inside RequestIdMiddleware: its 413s carry the request id too.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(errors.RequestIdMiddleware)
    routers = (migration_tasks, online_migration, instances, backups, jobs, tokens, verifications, workers)
    for module in routers:
        app.include_router(module.router, dependencies=[Depends(storable_parameters)])

    # No /metrics here: they name every project's tasks (service/serving.py serves them apart).
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    console.mount(app)  # the web console: static pages that call the API above
    return app
