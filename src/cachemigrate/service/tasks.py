"""Task operations behind the routes: validation, state guards (spec §5.4) and runner control."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from cachemigrate.errors import (
    CacheMigrateError,
    ConfigError,
    FormatError,
    InvalidParameterError,
    NotFoundError,
    StateError,
)
from cachemigrate.service import endpoints, fronts, quotas
from cachemigrate.service import filters as task_filters
from cachemigrate.service import states as st
from cachemigrate.service.api import schemas as s
from cachemigrate.service.backups import BackupService
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Instance, Task
from cachemigrate.service.db.session import Database
from cachemigrate.service.runner import Runner
from cachemigrate.service.settings import Settings
from cachemigrate.service.specs import bucket_of, check_import
from cachemigrate.service.specs import build as build_spec
from cachemigrate.service.tasklogs import LogLine

log = logging.getLogger(__name__)
MARKER_TIMEOUT = 10.0  # seconds to remove a deleted task's offset marker (in the background)
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() takes "²", which int() refuses
ResolvedEndpoint = tuple[dict[str, Any], str | None]  # (description without password, encrypted password)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One task of a batch stop/restart: ``error`` is None when it was done."""

    task_id: str
    error: CacheMigrateError | None = None


def wrong_state(task: Task, operation: str) -> StateError:
    sub = f" (task_status {task.task_status})" if task.task_status else ""
    return StateError(
        f"Operation {operation} is not allowed when the task is {task.status}{sub}.",
        kind="task",
        state=task.status,
        operation=operation,
    )


class TaskService:
    def __init__(
        self, db: Database, settings: Settings, cipher: Cipher, runner: Runner, backups: BackupService
    ) -> None:
        self.db = db
        self.backups = backups
        self.settings = settings
        self.cipher = cipher
        self.runner = runner

    async def get(self, project_id: str, task_id: str) -> Task:
        task = await self.db.call(repo.get_task, project_id=project_id, task_id=task_id)
        if task is None:
            raise NotFoundError("task", task_id)
        return task

    # --- endpoints -------------------------------------------------------------------------------

    async def _endpoint(
        self,
        project_id: str,
        field: str,
        ref: s.ConfigMigrationInstanceBody | s.SourceInstanceBody,
        *,
        require: str | None = None,
    ) -> ResolvedEndpoint:
        """Resolve ``{id | addrs, password, ...}``, and check it connects and authenticates."""
        has_id, has_addrs = bool(ref.id), bool(ref.addrs)
        if require == "id" and not has_id:
            raise InvalidParameterError(f"{field}.id", "required")
        if require == "addrs" and not has_addrs:
            raise InvalidParameterError(f"{field}.addrs", "required")
        if has_id == has_addrs:
            raise InvalidParameterError(field, "give exactly one of id and addrs")
        password = ref.password or None
        desc: dict[str, Any] = {"proxy_multi_db": False}
        if ref.id:
            inst = await endpoints.registered(self.db, project_id, ref.id)
            desc.update(endpoints.instance_desc(inst))
            if password is None:
                password = self.cipher.decrypt_optional(inst.password_enc)
        else:
            desc["addrs"] = ref.addrs
        # Given in the request, these win over a registered instance's own.
        given = endpoints.connection_fields(
            enable_ssl=ref.enable_ssl, ssl_verify=ref.ssl_verify, access_user=ref.access_user
        )
        if ref.enable_ssl is False:
            desc.pop("enable_ssl", None)
            desc.pop("ssl_verify", None)
        desc.update(given)
        try:
            endpoint = endpoints.endpoint_of(
                desc, password, network=self.settings.network_policy(project_id)
            )
        except ConfigError as exc:
            raise InvalidParameterError(f"{field}.addrs", str(exc)) from None
        if ref.db not in (None, ""):
            if not _DIGITS.fullmatch(str(ref.db)) or int(str(ref.db)) > 15999:
                raise InvalidParameterError(f"{field}.db", "a database index")
            desc["db"] = str(int(str(ref.db)))
        await endpoints.check(field, endpoint)
        return desc, self.cipher.encrypt_optional(password)

    # --- create ----------------------------------------------------------------------------------

    async def _check_quota(self, project_id: str) -> None:
        await quotas.check(
            self.db, repo.count_tasks, project_id=project_id, limit=self.settings.max_tasks_per_project,
            what="migration task",
        )

    async def _backup_files(self, project_id: str, body: s.BackupFilesBody | None) -> dict[str, Any]:
        if body is None:
            raise InvalidParameterError("backup_files", "required for backupfile_import")
        source = body.file_source or ("self_build_obs" if body.bucket_name else None)
        if source == "backup_record":
            if not body.backup_id:
                raise InvalidParameterError("backup_files.backup_id", "required for backup_record")
            row = await self.backups.usable(project_id, body.backup_id)
            return {"file_source": source, "backup_id": row.id}
        if source != "self_build_obs":
            raise InvalidParameterError("backup_files.file_source")
        if not body.bucket_name:
            raise InvalidParameterError("backup_files.bucket_name", "required for self_build_obs")
        if not body.files:
            raise InvalidParameterError("backup_files.files", "required for self_build_obs")
        names = [f.file_name for f in body.files]
        try:
            bucket_of(self.settings, project_id, body.bucket_name)
        except ConfigError as exc:
            raise InvalidParameterError("backup_files.bucket_name", str(exc)) from None
        try:
            # In a thread: it reads the file system (and a manifest, at most 1 MiB).
            await asyncio.to_thread(check_import, self.settings, project_id, body.bucket_name, names)
        except (ConfigError, FormatError) as exc:  # FormatError: a manifest that does not parse
            raise InvalidParameterError("backup_files.files", str(exc)) from None
        return {
            "file_source": source,
            "bucket_name": body.bucket_name,
            "files": [f.model_dump(exclude_none=True) for f in body.files],
        }

    async def create(self, project_id: str, body: s.CreateMigrationTaskBody) -> Task:
        if body.migration_type not in (st.IMPORT, st.ONLINE):
            raise InvalidParameterError("migration_type")
        if body.migration_method not in (st.FULL, st.INCREMENTAL):
            raise InvalidParameterError("migration_method")
        if body.migration_type == st.IMPORT and body.migration_method == st.INCREMENTAL:
            raise InvalidParameterError("migration_method", "a backup import is always a full migration")
        if body.network_type not in (None, "vpc", "vpn"):
            raise InvalidParameterError("network_type")
        rules = task_filters.checked(body.filter)
        await self._check_quota(project_id)
        fields: dict[str, Any] = {
            "description": body.description or "",
            "migration_method": body.migration_method,
            "network_type": body.network_type,
        }
        if body.migration_type == st.IMPORT:
            fields["backup_files"] = await self._backup_files(project_id, body.backup_files)
            status = st.MIGRATING
        else:
            if body.source_instance is None:
                raise InvalidParameterError("source_instance", "required for online_migration")
            fields["source"], fields["source_password_enc"] = await self._endpoint(
                project_id, "source_instance", body.source_instance, require="addrs"
            )
            status = st.FULLMIGRATING
        fields["target"], fields["target_password_enc"] = await self._endpoint(
            project_id, "target_instance", body.target_instance, require="id"
        )
        fields["target"] = task_filters.with_rules(fields["target"], rules)
        task = await self.db.call(
            repo.add_task,
            project_id=project_id,
            name=body.task_name,
            migration_type=body.migration_type,
            status=status,
            **fields,
        )
        self.runner.start(task.id)
        return task

    async def create_online(self, project_id: str, body: s.CreateOnlineMigrationTaskBody) -> tuple[str, str]:
        await self._check_quota(project_id)
        task = await self.db.call(
            repo.add_task,
            project_id=project_id,
            name=body.name,
            migration_type=st.ONLINE,
            status=st.CREATING,
            description=body.description or "",
            tenant_vpc_id=body.vpc_id,
            tenant_subnet_id=body.subnet_id,
            tenant_security_group_id=body.security_group_id,
        )
        job = await self.db.call(repo.add_job, project_id=project_id, job_type="createMigrationTask")
        self.runner.spawn(self.runner.provision(task.id, job.id))
        return task.id, job.id

    async def configure(self, project_id: str, task_id: str, body: s.SetOnlineMigrationTaskBody) -> Task:
        task = await self.get(project_id, task_id)
        if (task.migration_type != st.ONLINE or task.status not in st.RECONFIGURABLE
                or task.task_status in st.EXCHANGED | st.SWITCHING):
            raise wrong_state(task, "set_online_migration_task")
        if body.migration_method not in (st.FULL, st.INCREMENTAL):
            raise InvalidParameterError("migration_method")
        if body.resume_mode not in st.RESUME_MODES:
            raise InvalidParameterError("resume_mode")
        bandwidth = body.bandwidth_limit_mb or None
        if bandwidth is not None and (not _DIGITS.fullmatch(bandwidth) or not 1 <= int(bandwidth) <= 10240):
            raise InvalidParameterError("bandwidth_limit_mb", "an integer from 1 to 10240")
        rules = task_filters.checked(body.filter)
        source = await self._endpoint(project_id, "source_instance", body.source_instance)
        target = await self._endpoint(project_id, "target_instance", body.target_instance)
        target = (task_filters.with_rules(target[0], rules), target[1])
        if endpoints.first_address(source[0]) == endpoints.first_address(target[0]):
            raise InvalidParameterError("target_instance", "the source and the target are the same server")
        await self.db.call(repo.clear_checkpoint, task_id=task.id)
        ok = await self.db.call(
            repo.set_status_if,
            task_id=task.id,
            # Any configurable status, not only the one read above: CREATING -> RUNNING may
            # happen meanwhile (while the endpoints were checked).
            allowed=sorted(st.RECONFIGURABLE),
            status=st.FULLMIGRATING,
            migration_method=body.migration_method,
            resume_mode=body.resume_mode,
            bandwidth_limit_mb=str(int(bandwidth)) if bandwidth else None,
            source=source[0],
            source_password_enc=source[1],
            target=target[0],
            target_password_enc=target[1],
            error_message=None,
        )
        if not ok:  # configured or deleted by another request meanwhile
            raise wrong_state(await self.get(project_id, task_id), "set_online_migration_task")
        self.runner.start(task.id)
        return await self.get(project_id, task_id)

    # --- stop / restart / delete -----------------------------------------------------------------

    async def stop(self, project_id: str, task_id: str, *, wait: bool) -> Task:
        task = await self.get(project_id, task_id)
        if task.status == st.TERMINATED:
            return task  # a repeated stop is an idempotent success
        if task.status == st.TERMINATING and wait:
            await self.runner.stop(task.id, wait=True)
            return await self.get(project_id, task_id)
        if task.task_status in st.SWITCHING:  # its pause is bounded: wait for its end
            raise wrong_state(task, "stop")
        if task.status not in st.STOPPABLE or not await self.db.call(
            repo.set_status_if, task_id=task.id, allowed=sorted(st.STOPPABLE), status=st.TERMINATING
        ):
            raise wrong_state(task, "stop")
        await self.runner.stop(task.id, wait=wait)
        return await self.get(project_id, task_id)

    async def restart(self, project_id: str, task_id: str) -> None:
        task = await self.get(project_id, task_id)
        if task.status not in st.RESTARTABLE or task.target is None or task.task_status in st.EXCHANGED:
            # Exchanged: the writes go to the target; a migration source -> target would undo them.
            raise wrong_state(task, "restart")
        status = st.MIGRATING if task.migration_type == st.IMPORT else st.FULLMIGRATING
        if not await self.db.call(
            repo.set_status_if,
            task_id=task.id,
            allowed=sorted(st.RESTARTABLE),
            status=status,
            error_message=None,
        ):
            raise wrong_state(task, "restart")
        self.runner.start(task.id, first_log=LogLine("INFO", "migration.restart", "task restarted", []))

    async def batch(self, project_id: str, ids: list[str], op: str) -> list[BatchResult]:
        """Stop or restart each task; one task's failure does not stop the others (spec §6.10)."""
        results = []
        for task_id in ids:
            try:
                if op == "stop":
                    await self.stop(project_id, task_id, wait=False)
                else:
                    await self.restart(project_id, task_id)
                results.append(BatchResult(task_id))
            except (NotFoundError, StateError) as exc:
                results.append(BatchResult(task_id, exc))
        return results

    async def delete(self, project_id: str, ids: list[str]) -> list[str]:
        unique = list(dict.fromkeys(ids))
        tasks = []
        for task_id in unique:
            task = await self.get(project_id, task_id)
            if task.status in st.ACTIVE or task.task_status in (st.EXCHANGING, st.ROLLBACKING):
                raise wrong_state(task, "delete")
            tasks.append(task)
        for task in tasks:
            await self.db.call(repo.update_task, task_id=task.id, deleted=True)
            if task.migration_type != st.IMPORT and task.source is not None and task.target is not None:
                self.runner.spawn(self._remove_marker(task))
        return unique

    async def _remove_marker(self, task: Task) -> None:
        """A deleted online task leaves no exactly-once offset marker in its target
        (engine/exactly_once.py); a target that cannot be reached keeps it (logged)."""
        from cachemigrate.engine.exactly_once import remove_marker  # late: the engine loads on use

        try:
            await self.runner.ensure_stopped(task.id)  # the reverse sync of an exchanged task
            spec = build_spec(self.settings, self.cipher, task)
            if spec.source.endpoint is not None:
                await asyncio.wait_for(
                    remove_marker(spec.target, spec.source.endpoint.address), MARKER_TIMEOUT
                )
                if task.task_status is not None:  # switched once: the reverse sync's marker too
                    await asyncio.wait_for(
                        remove_marker(spec.source.endpoint, spec.target.address), MARKER_TIMEOUT
                    )
        except (CacheMigrateError, OSError, TimeoutError) as exc:
            log.warning("task %s deleted; its offset marker stays in its target: %s", task.id, exc)

    async def update(self, project_id: str, task_id: str, body: s.MigrationUpdateRequestEntity) -> None:
        task = await self.get(project_id, task_id)
        mode = body.resume_mode or "auto"
        if mode not in st.RESUME_MODES:
            raise InvalidParameterError("resume_mode")
        await self.db.call(repo.update_task, task_id=task.id, resume_mode=mode)

    # --- exchange-ip / rollback-ip (service/switching.py) -----------------------------------------

    async def exchange_ip(self, project_id: str, task_id: str, body: s.IpExchangeRequest) -> None:
        task = await self.get(project_id, task_id)
        if task.status != st.INCRMIGEATING or task.task_status not in st.EXCHANGEABLE:
            raise wrong_state(task, "exchange-ip")
        if task_filters.rules_of(task):
            raise StateError("exchange-ip: the task migrates with filter rules, so its target does not "
                             "hold what the source's clients read (and the reverse sync cannot invert "
                             "the rules)", kind="task", state=task.status, operation="exchange-ip")
        source, target = await self._switch_instances(task, "exchange-ip")
        own = [(source, "source"), (target, "target")]
        chosen: list[dict[str, Any]] = []
        for ip in body.exchanged_ip:
            hits = [inst.front for inst, _ in own if inst.front is not None and fronts.names(inst.front, ip)]
            if not hits:
                raise InvalidParameterError(
                    "exchanged_ip", f"{ip!r} is not the address of a front of the task's source or target "
                    "instance (front.address)")
            chosen += [h for h in hits if h not in chosen]
        if source.front not in chosen:
            raise InvalidParameterError(
                "exchanged_ip", "name the source instance's front: its clients are the ones to move")
        domain = ("is_exchange_domain: a haproxy front has no name of its own; names that resolve to "
                  "its address move with it") if body.is_exchange_domain else ""
        await self._request_switch(task, "exchange-ip", chosen, st.EXCHANGEABLE, st.EXCHANGING, domain)

    async def rollback_ip(self, project_id: str, task_id: str) -> None:
        from cachemigrate.service.switching import points_at

        task = await self.get(project_id, task_id)
        if task.task_status not in st.EXCHANGED or task.status != st.TERMINATED:
            raise wrong_state(task, "rollback-ip")
        source, target = await self._switch_instances(task, "rollback-ip")
        assert source.front is not None
        # Back where they were: the source's front, and the target's if the exchange moved it.
        chosen: list[dict[str, Any]] = [source.front]
        if target.front is not None:
            src_endpoint, _ = self._endpoints_of(task)
            try:
                front = await fronts.open_front(target.front, self.settings, project_id)
                if await points_at(front, src_endpoint):
                    chosen.append(target.front)
            except CacheMigrateError as exc:
                raise StateError(f"rollback-ip: the target's front cannot be read: {exc}", kind="task",
                                 state=task.status, operation="rollback-ip") from None
        await self._request_switch(task, "rollback-ip", chosen, sorted(st.EXCHANGED), st.ROLLBACKING, "")

    def _endpoints_of(self, task: Task) -> tuple[Any, Any]:
        switcher = self.runner.switcher
        if switcher is None:
            raise StateError("IP switching needs the in-process engine", kind="task", state=task.status,
                             operation="switch")
        return switcher.endpoints(task)

    async def _switch_instances(self, task: Task, operation: str) -> tuple[Instance, Instance]:
        """The task's source and target as registered instances (spec §6.14: both referenced by
        id), the source with a front, both logging in alike (clients keep their password)."""
        def refuse(why: str) -> StateError:
            return StateError(f"{operation} is not possible: {why}.", kind="task", state=task.status,
                              operation=operation)

        src_id = (task.source or {}).get("id")
        tgt_id = (task.target or {}).get("id")
        if not src_id or not tgt_id:
            raise refuse("the source and the target must both be registered instances (given by id)")
        try:
            source = await endpoints.registered(self.db, task.project_id, src_id)
            target = await endpoints.registered(self.db, task.project_id, tgt_id)
        except NotFoundError:
            raise refuse("an instance of the task is no longer registered") from None
        if source.front is None:
            raise refuse("the source instance has no front (register it with \"front\")")
        src_pw = self.cipher.decrypt_optional(task.source_password_enc)
        tgt_pw = self.cipher.decrypt_optional(task.target_password_enc)
        users = [(task.source or {}).get("access_user"), (task.target or {}).get("access_user")]
        if src_pw != tgt_pw or users[0] != users[1]:
            raise refuse("the source and the target must take the same user and password: the clients "
                         "moved keep theirs")
        if (task.source or {}).get("db") not in (None, ""):
            raise refuse("the task migrates one db only; a switch moves whole servers")
        return source, target

    async def _request_switch(
        self, task: Task, operation: str, chosen: list[dict[str, Any]], allowed: Any, during: str, note: str
    ) -> None:
        from cachemigrate.service.switching import EXCHANGE, ROLLBACK, SwitchRequest

        if not await self.runner.switchable(task.id):
            raise StateError(f"{operation} is not possible now: the task's migration is not running in this "
                             "service (yet); try again in a moment", kind="task", state=task.status,
                             operation=operation)
        where = ", ".join(f"{f['address']} ({f['server']})" for f in chosen)
        message = f"{operation} requested: fronts {where}" + (f"; {note}" if note else "")
        status = st.INCRMIGEATING if operation == "exchange-ip" else st.TERMINATED
        if not await self.db.call(
            repo.set_switch_state, task_id=task.id, statuses=[status], task_statuses=list(allowed),
            entry=LogLine("INFO", "migration.exchange" if during == st.EXCHANGING else "migration.rollback",
                          message, []).row(),
            task_status=during,
        ):
            raise wrong_state(await self.get(task.project_id, task.id), operation)
        word = EXCHANGE if during == st.EXCHANGING else ROLLBACK
        request = SwitchRequest(word, tuple(chosen), task.project_id)
        if not await self.runner.submit_switch(task.id, request):
            ending = st.EXCHANGE_FAILED if during == st.EXCHANGING else st.ROLLBACK_FAILED
            await self.db.call(
                repo.set_switch_state, task_id=task.id, statuses=[status], task_statuses=[during],
                entry=LogLine("ERROR", "migration.error.state", f"{operation} failed: the migration "
                              "stopped meanwhile; nothing moved", []).row(),
                task_status=ending,
            )
