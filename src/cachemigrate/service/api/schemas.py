"""The migration tasks' wire models, named after the SDK's models: the bodies of offline
(backup file) and online tasks, with the instances and backup files a task names, and how tasks,
their statistics, logs and jobs are answered."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

from pydantic import Field, field_validator

from cachemigrate.service.api.fields import (
    AccessUser,
    Addrs,
    Description,
    Digits,
    EnableSsl,
    FileSource,
    Id,
    In,
    LooseStr,
    MigrationMethod,
    MigrationType,
    Name,
    NetworkType,
    Out,
    Password,
    ResumeMode,
    SslVerify,
)
from cachemigrate.service.api.filter_schema import FilterBody

MAX_BATCH = 50  # spec §6.10, §6.11
MAX_DELETE = 1000


class Files(In):
    file_name: Annotated[str, Field(min_length=1, max_length=1024)]
    size: Annotated[LooseStr, Field(max_length=64)] | None = None  # free-form ("754.0MB")
    update_at: Annotated[str, Field(max_length=64)] | None = None  # YYYY-MM-DD HH:MM:SS


MAX_IMPORT_FILES = 1000  # files[] of one import (a 1000-shard cluster's RDBs)


class BackupFilesBody(In):
    file_source: FileSource | None = None
    bucket_name: Annotated[str, Field(max_length=255)] | None = None
    files: Annotated[list[Files], Field(max_length=MAX_IMPORT_FILES)] | None = None
    backup_id: Id | None = None

    @field_validator("files")
    @classmethod
    def _unique(cls, files: list[Files] | None) -> list[Files] | None:
        """A file named twice would be imported twice: refused (``./a.rdb`` is ``a.rdb``)."""
        seen: set[str] = set()
        for f in files or []:
            key = posixpath.normpath(f.file_name)
            if key in seen:
                raise ValueError(f"the file {f.file_name[:120]!r} is named more than once")
            seen.add(key)
        return files


class SourceInstanceBody(In):
    addrs: Addrs | None = None
    password: Password = None
    id: Id | None = None
    name: Annotated[str, Field(max_length=64)] | None = None  # an echo of the output; ignored
    proxy_multi_db: bool | None = None
    db: Digits | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None


class TargetInstanceBody(SourceInstanceBody):
    pass


class CreateMigrationTaskBody(In):
    task_name: Name
    description: Description | None = None
    migration_type: MigrationType
    migration_method: MigrationMethod
    backup_files: BackupFilesBody | None = None
    network_type: NetworkType | None = None
    source_instance: SourceInstanceBody | None = None
    target_instance: TargetInstanceBody
    filter: FilterBody | None = None


class CreateOnlineMigrationTaskBody(In):
    name: Name
    description: Description | None = None
    vpc_id: Id
    subnet_id: Id
    security_group_id: Id


class ConfigMigrationInstanceBody(In):
    id: Id | None = None
    addrs: Addrs | None = None
    password: Password = None
    db: Digits | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None


class SetOnlineMigrationTaskBody(In):
    migration_method: MigrationMethod
    resume_mode: ResumeMode
    bandwidth_limit_mb: Annotated[Digits, Field(description="MB/s, 1-10240; absent: unlimited")] | None = None
    source_instance: ConfigMigrationInstanceBody
    target_instance: ConfigMigrationInstanceBody
    filter: FilterBody | None = None


class BatchStopMigrationTasksBody(In):
    migration_tasks: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH)]


class BatchRestartOnlineMigrationTasksBody(In):
    migration_tasks: Annotated[list[Id], Field(min_length=1, max_length=MAX_BATCH)]


class DeleteMigrateTaskRequest(In):
    task_id_list: Annotated[list[Id], Field(min_length=1, max_length=MAX_DELETE)]


class MigrationUpdateRequestEntity(In):
    resume_mode: ResumeMode | None = "auto"


class IpExchangeRequest(In):
    # IPv4 or IPv6 addresses (at most 45 characters; 64 leaves room for a zone).
    exchanged_ip: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(min_length=1, max_length=16, description="the front addresses to switch: each the host "
              "(or host:port) of the `front.address` of the task's source or target instance; the "
              "source's must be among them (400 DCS.4063 otherwise)"),
    ]
    is_exchange_domain: bool | None = Field(
        default=None, description="haproxy fronts have no name of their own: a DNS name that resolves "
        "to a front's address keeps resolving to it and so moves with it, true or false alike")


class CreateMigrationTaskResponse(Out):
    id: str
    name: str
    status: str


class CreateOnlineMigrationTaskResponse(Out):
    instance_id: str
    job_id: str


class SetOnlineMigrationTaskResponse(Out):
    id: str
    name: str
    status: str
    error: str = ""


class FileInfo(Out):
    file_name: str
    size: str | None = None
    update_at: str | None = None


class BackupRecordRef(Out):
    backup_id: str | None = None


class BackupFilesInfo(Out):
    file_source: str | None = None
    bucket_name: str | None = None
    files: list[FileInfo] | None = None
    backup_id: str | None = None
    backup_record: BackupRecordRef | None = None


class InstanceInfo(Out):
    """SourceInstanceBody / TargetInstanceBody as answered: no password key."""

    addrs: str | None = None
    id: str | None = None
    name: str | None = None
    ip: str | None = None
    port: str | None = None
    task_status: str | None = None
    proxy_multi_db: bool | None = None
    db: str | None = None
    enable_ssl: bool | None = None
    ssl_verify: bool | None = None
    access_user: str | None = None


class ShowMigrationTaskResponse(Out):
    task_id: str
    task_name: str
    description: str
    status: str
    migration_type: str
    migration_method: str | None = None
    ecs_tenant_private_ip: str
    backup_files: BackupFilesInfo | None = None
    network_type: str | None = None
    source_instance: InstanceInfo | None = None
    target_instance: InstanceInfo | None = None
    created_at: str
    updated_at: str
    released_at: str | None = None
    version: str
    resume_mode: str
    supported_features: list[str]
    tenant_vpc_id: str | None = None
    tenant_subnet_id: str | None = None
    tenant_security_group_id: str | None = None
    bandwidth_limit_mb: str | None = None
    task_status: str | None = None
    error_message: str | None = None
    filter: dict[str, Any] | None = Field(None, description="Extension: the task's filter rules (FilterBody)")
    run_by: str | None = Field(
        None, description="Extension (distributed mode): the worker that runs the task, or ran it last")


class MigrationTaskList(Out):
    task_id: str
    task_name: str
    status: str
    migration_type: str
    migration_method: str | None = None
    ecs_tenant_private_ip: str
    data_source: str | None = None
    source_instance_name: str | None = None
    source_instance_id: str | None = None
    target_instance_addrs: str | None = None
    target_instance_name: str | None = None
    target_instance_id: str | None = None
    created_at: str
    description: str
    source_instance_status: str | None = None
    target_instance_status: str | None = None
    source_instance_subnet_id: str | None = None
    target_instance_subnet_id: str | None = None
    source_instance_spec_code: str | None = None
    target_instance_spec_code: str | None = None
    error_message: str | None = None
    released_at: str | None = None
    version: str
    resume_mode: str
    supported_features: list[str]


class ListMigrationTaskResponse(Out):
    count: int
    migration_tasks: list[MigrationTaskList]


class ShowMigrationTaskStatsResponse(Out):
    full_migration_progress: str
    offset: str
    source_dbsize: str
    target_dbsize: str
    target_input_kbps: str
    target_ops: str
    is_migrating: bool


class MigrationLog(Out):
    created_at: str
    log_level: str
    message: str
    log_code: str
    keyword: list[str]


class ListMigrationTaskLogsResponse(Out):
    log_num: int
    migration_logs: list[MigrationLog]


class StopMigrationTaskResult(Out):
    task_id: str
    result: str
    error_code: str | None = None
    error_msg: str | None = None


class BatchStopMigrationTasksResponse(Out):
    migration_tasks: list[StopMigrationTaskResult]


class BatchRestartOnlineMigrationTasksResponse(Out):
    migration_tasks: list[StopMigrationTaskResult]


class DeleteMigrationTaskResponse(Out):
    task_id_list: list[str]


class ShowJobInfoResponse(Out):
    job_id: str
    job_type: str
    status: str
    begin_time: str
    end_time: str | None = None
    fail_reason: str | None = None
