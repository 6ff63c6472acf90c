"""Instance backups: an RDB fetched over replication (``engine.backup``) into the backup store.

A backup is recorded first (``waiting``), then runs in the background (``backuping``) and ends
``succeed`` with its size, or ``failed`` with ``error_code`` (spec §7: dcs.08.0001 the backup
could not run, dcs.08.0004 the store refused our credentials) and a message kept for the CLI.
Backups interrupted by a restart are marked failed at the next start.

Retention (Settings ``backup_retention_count``, 0 = keep all): when a backup of an instance
succeeds, the instance keeps its N newest succeeded backups and the older ones are deleted, file
and record. Failed backups hold no file; they stay listed (with their error) until deleted, and
count against the project's backup quota like the others. ``delete`` removes one backup, file and
record; not while it is being taken, nor while a running import reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from cachemigrate.engine.backup import FileSink, RdbSink, S3Sink, fetch_rdb, remove_rdb
from cachemigrate.engine.spec import S3Settings
from cachemigrate.errors import CacheMigrateError, ConfigError, NotFoundError, StateError
from cachemigrate.service import quotas
from cachemigrate.service import states as st
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import backups as brepo
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Backup, Instance
from cachemigrate.service.db.session import Database
from cachemigrate.service.endpoints import endpoint_of, instance_desc, registered
from cachemigrate.service.settings import BucketLocation, Settings

log = logging.getLogger(__name__)

SUCCEED = "succeed"
FAILED = "failed"
RUNNING = ("waiting", "backuping")
IN_USE = "restoring"  # the StateError state of a backup a running import reads


class BackupService:
    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self._running: set[asyncio.Task[Backup | None]] = set()

    # --- records ---------------------------------------------------------------------------------

    async def instance(self, project_id: str, instance_id: str) -> Instance:
        return await registered(self.db, project_id, instance_id)

    async def usable(self, project_id: str, backup_id: str) -> Backup:
        """A backup of the project that can be imported: NotFoundError, or StateError unless succeed."""
        row = await self.db.call(brepo.get_backup, project_id=project_id, backup_id=backup_id)
        if row is None:
            raise NotFoundError("backup", backup_id)
        if row.status != SUCCEED:
            raise StateError(
                f"The backup record {backup_id} is {row.status}; only a succeed backup can be restored.",
                kind="backup",
                state=row.status,
                operation="restore",
            )
        return row

    # --- deleting ----------------------------------------------------------------------------------

    async def delete(self, project_id: str, instance_id: str, backup_id: str) -> None:
        """Delete a backup of the instance, its file first (a record without a file would still
        look restorable). The instance itself may be gone: its backups can still be cleaned up."""
        row = await self.db.call(brepo.get_backup, project_id=project_id, backup_id=backup_id)
        if row is None or row.instance_id != instance_id:
            await self.instance(project_id, instance_id)  # an unknown instance is that error
            raise NotFoundError("backup", backup_id)
        if row.status in RUNNING:
            raise StateError(
                f"The backup {backup_id} is still being taken ({row.status}).",
                kind="backup", state=row.status, operation="delete",
            )
        if await self._in_use(row):
            raise StateError(
                f"The backup {backup_id} is being imported by a running migration task.",
                kind="backup", state=IN_USE, operation="delete",
            )
        await self._remove(row)

    async def _in_use(self, row: Backup) -> bool:
        return await self.db.call(
            brepo.backup_in_use, project_id=row.project_id, backup_id=row.id, statuses=sorted(st.ACTIVE)
        )

    async def _remove(self, row: Backup) -> None:
        await remove_rdb(row.location, self.s3_settings_for(row.location))
        await self.db.call(brepo.delete_backup, backup_id=row.id)
        log.info("backup %s of instance %s deleted", row.id, row.instance_id)

    async def _retain(self, project_id: str, instance_id: str) -> None:
        """Retention after a backup of the instance succeeded (see the module docstring)."""
        keep = self.settings.backup_retention_count
        if keep <= 0:
            return
        rows = await self.db.call(
            brepo.succeeded_beyond, project_id=project_id, instance_id=instance_id, keep=keep
        )
        for row in rows:
            if await self._in_use(row):  # kept until a later backup, when the import is over
                continue
            try:
                await self._remove(row)
            except CacheMigrateError as exc:  # the new backup stands; the old one waits for the next
                log.warning("retention could not delete backup %s: %s", row.id, exc)

    def _location(self, project_id: str, instance_id: str, backup_id: str) -> str:
        store = self.settings.backup_location()
        rel = f"{project_id}/{instance_id}/{backup_id}.rdb"
        if store.directory is not None:
            return str(store.directory / rel)
        return store.url_of(rel)

    def s3_settings_for(self, url: str) -> S3Settings | None:
        """How to read (or write) an s3:// location of the backup store."""
        if not url.startswith("s3://"):
            return None
        bucket = url[5:].split("/", 1)[0]
        candidates: list[BucketLocation] = []
        with contextlib.suppress(ConfigError):
            candidates.append(self.settings.backup_location())
        for name in self.settings.buckets:
            with contextlib.suppress(ConfigError):
                loc = self.settings.bucket_location(name)
                if loc is not None:
                    candidates.append(loc)
        for loc in candidates:
            if loc.s3 is not None and loc.s3_bucket == bucket:
                return loc.s3
        return self.settings.default_s3()

    # --- taking a backup ---------------------------------------------------------------------------

    async def create(
        self, project_id: str, instance_id: str, *, remark: str = "", wait: bool = False
    ) -> Backup:
        """Record a backup of the instance and run it (in the background unless ``wait``)."""
        inst = await self.instance(project_id, instance_id)
        await quotas.check(
            self.db, brepo.count_backups, project_id=project_id, limit=self.settings.max_backups_per_project,
            what="backup",
        )
        backup_id = repo.new_id()
        try:
            location = self._location(project_id, inst.id, backup_id)
        except ConfigError as exc:
            raise ConfigError(f"the backup store is misconfigured: {exc}") from None
        row = await self.db.call(
            brepo.add_backup, project_id=project_id, instance_id=inst.id, backup_id=backup_id,
            name=f"{inst.name}-{row_stamp()}", remark=remark, location=location,
        )
        if wait:
            return await self.run(row.id, inst) or row
        task = asyncio.create_task(self.run(row.id, inst), name=f"backup-{row.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return row

    def _sink(self, location: str) -> RdbSink:
        if location.startswith("s3://"):
            bucket, _, key = location[5:].partition("/")
            return S3Sink(self.s3_settings_for(location) or S3Settings(), bucket, key)
        return FileSink(Path(location))

    async def run(self, backup_id: str, inst: Instance) -> Backup | None:
        """Take the backup now (the API's background task; the CLI awaits it)."""
        row = await self.db.call(
            brepo.update_backup, backup_id=backup_id, status="backuping", execution_at=repo.now_iso()
        )
        assert row is not None
        try:
            endpoint = endpoint_of(
                instance_desc(inst),
                self.cipher.decrypt_optional(inst.password_enc),
                network=self.settings.network_policy(inst.project_id),
            )
            result = await fetch_rdb(endpoint, self._sink(row.location))
        except (CacheMigrateError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            code = "dcs.08.0004" if "access denied" in message else "dcs.08.0001"
            log.warning("backup %s of instance %s failed: %s", backup_id, inst.id, message)
            return await self.db.call(
                brepo.update_backup, backup_id=backup_id, status=FAILED, error_code=code,
                error_message=message[:4000],
            )
        done = await self.db.call(
            brepo.update_backup, backup_id=backup_id, status=SUCCEED, size=result.size, progress="100.00",
            error_code=None, error_message=None,
        )
        await self._retain(inst.project_id, inst.id)
        return done

    async def fail_interrupted(self) -> None:
        """At start-up: a backup that was running when the service stopped cannot continue."""
        for row in await self.db.call(brepo.unfinished_backups):
            await self.db.call(
                brepo.update_backup, backup_id=row.id, status=FAILED, error_code="dcs.08.0001",
                error_message="the service restarted while the backup was running",
            )

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def row_stamp() -> str:
    return repo.now_iso().replace("-", "").replace(":", "").replace("T", "").split(".")[0]
