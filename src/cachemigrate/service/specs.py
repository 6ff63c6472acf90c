"""From a stored task to the engine's PipelineSpec; and the checks a backup import's files pass."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cachemigrate.engine.confine import check_name, shown
from cachemigrate.engine.sources import BucketFiles
from cachemigrate.engine.spec import (
    DbMode,
    PipelineOptions,
    PipelineSpec,
    ResumeMode,
    S3Settings,
    SourceKind,
    SourceSpec,
)
from cachemigrate.errors import ConfigError, NotFoundError, StateError
from cachemigrate.service import filters as task_filters
from cachemigrate.service import states as st
from cachemigrate.service.backups import BackupService
from cachemigrate.service.crypto import Cipher
from cachemigrate.service.db import repo
from cachemigrate.service.db.models import Task
from cachemigrate.service.db.session import Database
from cachemigrate.service.endpoints import endpoint_of
from cachemigrate.service.settings import BucketLocation, Settings

RDB_SUFFIXES = (".rdb",)
AOF_SUFFIXES = (".aof", ".manifest")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
UNSUPPORTED = "unsupported backup file type; a backup file must be .rdb, .aof, .zip or .tar.gz"


def bucket_of(settings: Settings, project_id: str, bucket: str) -> BucketLocation:
    """``bucket`` as ``project_id`` may read it; the same ConfigError for a bucket that does not
    exist and for one not bound to the project (no existence oracle)."""
    loc = settings.project_bucket(project_id, bucket)
    if loc is None:
        raise ConfigError(f"bucket {bucket!r} is not configured for this project")
    return loc


def bucket_files(loc: BucketLocation) -> BucketFiles:
    """The engine's view of a bucket: every file an import opens is confined to it."""
    root = str(loc.directory) if loc.directory is not None else loc.url_of("")
    return BucketFiles(root, loc.s3)


def file_kind(names: Sequence[str], is_dir: Callable[[str], bool] = lambda _: False) -> SourceKind:
    """RDB_FILES when every file is a plain RDB; AOF_FILES (which reads RDBs too) otherwise.

    ``is_dir``: whether a name without a known suffix is a directory (a multi-part AOF's).
    """
    kinds = set()
    for name in names:
        low = name.lower()
        if low.endswith(RDB_SUFFIXES):
            kinds.add(SourceKind.RDB_FILES)
        elif low.endswith(AOF_SUFFIXES + ARCHIVE_SUFFIXES) or is_dir(name):
            kinds.add(SourceKind.AOF_FILES)
        else:
            raise ConfigError(f"{shown(name.rsplit('/', 1)[-1])}: {UNSUPPORTED}")
    return SourceKind.AOF_FILES if SourceKind.AOF_FILES in kinds else SourceKind.RDB_FILES


def check_import(settings: Settings, project_id: str, bucket: str, names: Sequence[str]) -> None:
    """What an import will read, checked before its task is accepted (ConfigError naming the file).

    A file bucket is checked file by file, the files a manifest lists and the manifest of a
    directory included, each confined to the bucket; an s3:// one only by name (its objects are
    read when the task runs: a missing one fails the task with a log line).
    """
    files = bucket_files(bucket_of(settings, project_id, bucket))
    if files.directory is None:
        for name in names:
            check_name(name)
        return
    if file_kind(names, files.is_dir) is SourceKind.RDB_FILES:  # read as they are named
        for name in names:
            files.check_file(name)
        return
    from cachemigrate.engine.readers.aof_file import plan  # the reader's own planning: one check

    plan(files, names)


def import_source(settings: Settings, project_id: str, files: Mapping[str, Any]) -> SourceSpec:
    """The engine source of ``project_id``'s ``self_build_obs`` import: names in the bucket.

    The bucket's binding is checked again when the task runs: a bucket the operator has unbound
    since the task was created is not read. The engine confines every file it opens to the
    bucket and names files as given (bucket-relative) in its log lines and errors.
    """
    bucket = str(files.get("bucket_name") or "")
    names = [str(f["file_name"]) for f in files.get("files") or []]
    if not names:
        raise ConfigError("the import names no backup files")
    loc = bucket_of(settings, project_id, bucket)
    bucket_view = bucket_files(loc)
    for name in names:
        check_name(name)
    kind = file_kind(names, bucket_view.is_dir)
    return SourceSpec(kind=kind, paths=tuple(names), root=bucket_view.root, s3=loc.s3)


def backup_record_source(location: str, s3: S3Settings | None) -> SourceSpec:
    """A backup record's RDB: named by its file name, inside its folder of the backup store."""
    folder, _, name = location.rpartition("/")
    return SourceSpec(kind=SourceKind.RDB_FILES, paths=(name,), root=f"{folder}/", s3=s3)


def options_of(task: Task, source: Mapping[str, Any] | None, *, c_walker: bool = True) -> PipelineOptions:
    bandwidth = float(task.bandwidth_limit_mb) if task.bandwidth_limit_mb else None
    db = source.get("db") if source else None
    db_mode = DbMode.ONLY if db not in (None, "") else DbMode.KEEP
    return PipelineOptions(
        incremental=task.migration_method == st.INCREMENTAL,
        bandwidth_mb=bandwidth,
        resume_mode=ResumeMode(task.resume_mode if task.resume_mode in st.RESUME_MODES else "auto"),
        db_mode=db_mode,
        db=int(str(db)) if db_mode is DbMode.ONLY else None,
        c_walker=c_walker,
        filters=task_filters.rules_of(task),
    )


def build(
    settings: Settings, cipher: Cipher, task: Task, backup_source: SourceSpec | None = None
) -> PipelineSpec:
    if task.target is None:
        raise ConfigError("the task has no target configured")
    # Checked when the task was configured, and again at every connection: the project's
    # networks may have narrowed since (a resume after a restart).
    network = settings.network_policy(task.project_id)
    target = endpoint_of(task.target, cipher.decrypt_optional(task.target_password_enc), network=network)
    if task.migration_type == st.IMPORT:
        source = backup_source or import_source(settings, task.project_id, task.backup_files or {})
        options = options_of(task, None, c_walker=not settings.pure_python)
        return PipelineSpec(source=source, target=target, options=options, name=task.name)
    if task.source is None:
        raise ConfigError("the task has no source configured")
    src = endpoint_of(task.source, cipher.decrypt_optional(task.source_password_enc), network=network)
    return PipelineSpec(
        source=SourceSpec(kind=SourceKind.SYNC, endpoint=src),
        target=target,
        options=options_of(task, task.source, c_walker=not settings.pure_python),
        name=task.name,
    )


class SpecBuilder:
    """``await builder(task_id)``: the runner's way to get a task's PipelineSpec."""

    def __init__(self, db: Database, settings: Settings, cipher: Cipher, backups: BackupService) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self.backups = backups

    async def __call__(self, task_id: str) -> PipelineSpec:
        task = await self.db.call(repo.get_task, project_id=None, task_id=task_id)
        if task is None:
            raise ConfigError("the task was deleted")
        files = task.backup_files or {}
        backup_source = None
        if task.migration_type == st.IMPORT and files.get("file_source") == "backup_record":
            backup_id = str(files.get("backup_id") or "")
            try:
                row = await self.backups.usable(task.project_id, backup_id)
            # Deleted or failed since the task was accepted: the task fails with this line.
            except NotFoundError:
                raise ConfigError(f"the backup record {backup_id} no longer exists") from None
            except StateError as exc:
                raise ConfigError(str(exc)) from None
            backup_source = backup_record_source(row.location, self.backups.s3_settings_for(row.location))
        return build(self.settings, self.cipher, task, backup_source)
