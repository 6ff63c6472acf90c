"""Wire models, named after the SDK's models. Inputs ignore unknown keys (the SDK echoes output-only
fields back); outputs never carry a password (spec §9.8)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")



def _number_as_text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# The docs send numbers where the SDK types strings: accept both, keep strings.
LooseStr = Annotated[str, BeforeValidator(_number_as_text)]
Description = Annotated[str, Field(max_length=1024)]
# A decimal number sent as a string or a JSON number: ASCII digits only (str.isdigit() also takes
# "²" and "٦٣٧٩"); "" means absent. The pattern sits inside the number conversion so that the
# OpenAPI document shows it (outside, pydantic checks it in a step the document leaves out).
Digits = Annotated[str, Field(pattern=r"^[0-9]{0,5}$"), BeforeValidator(_number_as_text)]
# Our extensions of an endpoint (named as in the DCS instance models; service/endpoints.py).
EnableSsl = Annotated[
    bool | None, Field(description="Extension: connect with TLS (what rediss:// says in a URL)")
]
SslVerify = Annotated[
    bool | None, Field(description="Extension, with enable_ssl: false skips verifying the server certificate")
]
# Write-only (spec §9.8): never answered, and kept out of repr() (a logged model shows no password).
Password = Annotated[str | None, Field(repr=False)]
AccessUser = Annotated[
    str | None,
    Field(max_length=256, description="Extension: the ACL user to log in as (default user if absent)"),
]


def check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("4 to 64 characters from letters, digits, _ and -")
    return value


# A task or instance name; the pattern is in the OpenAPI document too (a generated client or a
# fuzzer then sends names the service takes), the validator keeps the message.
Name = Annotated[str, AfterValidator(check_name), Field(json_schema_extra={"pattern": NAME_RE.pattern})]


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be kept as sent (None when it can): PostgreSQL refuses NUL in text, and
    a lone surrogate (JSON lets "\\ud800" through) has no UTF-8 form for any database."""
    if "\x00" in text:
        return "NUL characters are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate)"
    return None


def _storable(value: object) -> object:
    for text in value if isinstance(value, list) else [value]:
        why = unstorable(text) if isinstance(text, str) else None
        if why:
            raise ValueError(why)
    return value


class In(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Every string of every input (lists of strings too: pydantic lets their surrogates through),
    # whichever database is behind: the same 400 on SQLite and PostgreSQL, never a 500.
    _strings_storable = field_validator("*")(_storable)


# --- inputs -------------------------------------------------------------------------------------


class Files(In):
    file_name: Annotated[str, Field(min_length=1, max_length=1024)]
    size: LooseStr | None = None
    update_at: str | None = None


class BackupFilesBody(In):
    file_source: str | None = None
    bucket_name: str | None = None
    files: list[Files] | None = None
    backup_id: str | None = None


class BackupInstanceBody(In):
    remark: Annotated[str, Field(max_length=1024)] | None = None
    backup_format: str | None = None


class SourceInstanceBody(In):
    addrs: str | None = None
    password: Password = None
    id: str | None = None
    name: str | None = None
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
    migration_type: str
    migration_method: str
    backup_files: BackupFilesBody | None = None
    network_type: str | None = None
    source_instance: SourceInstanceBody | None = None
    target_instance: TargetInstanceBody


class CreateOnlineMigrationTaskBody(In):
    name: Name
    description: Description | None = None
    vpc_id: Annotated[str, Field(max_length=64)]
    subnet_id: Annotated[str, Field(max_length=64)]
    security_group_id: Annotated[str, Field(max_length=64)]


class ConfigMigrationInstanceBody(In):
    id: str | None = None
    addrs: str | None = None
    password: Password = None
    db: Digits | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None


class SetOnlineMigrationTaskBody(In):
    migration_method: str
    resume_mode: str
    bandwidth_limit_mb: Digits | None = None
    source_instance: ConfigMigrationInstanceBody
    target_instance: ConfigMigrationInstanceBody


class BatchStopMigrationTasksBody(In):
    migration_tasks: Annotated[list[str], Field(min_length=1, max_length=50)]


class BatchRestartOnlineMigrationTasksBody(In):
    migration_tasks: Annotated[list[str], Field(min_length=1, max_length=50)]


class DeleteMigrateTaskRequest(In):
    task_id_list: Annotated[list[str], Field(min_length=1, max_length=1000)]


class MigrationUpdateRequestEntity(In):
    resume_mode: str | None = "auto"


class IpExchangeRequest(In):
    exchanged_ip: Annotated[list[str], Field(min_length=1)]
    is_exchange_domain: bool | None = None


class CreateInstanceBody(In):
    """Our extension (spec §9.12): register an existing Redis endpoint in the inventory."""

    name: Name
    addrs: Annotated[str, Field(min_length=3, max_length=1024)]
    password: Password = None
    description: Description | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None


# --- outputs ------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (spec §2.4); signature failures add ``request_id``."""

    error_code: str
    error_msg: str
    error_ext_msg: str | None = None
    request_id: str | None = None


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class BackupRecordResponse(Out):
    backup_id: str
    backup_name: str
    instance_id: str
    size: int
    backup_type: str
    status: str
    created_at: str
    updated_at: str
    progress: str
    remark: str
    is_support_restore: str
    backup_format: str
    period: str = ""
    execution_at: str | None = None
    error_code: str | None = None


class CopyInstanceResponse(Out):
    backup_id: str


class ListBackupRecordsResponse(Out):
    total_num: int
    backup_record_response: list[BackupRecordResponse]


class InstanceListInfo(Out):
    instance_id: str
    name: str
    description: str
    engine: str
    engine_version: str
    status: str
    ip: str
    port: int
    domain_name: str
    no_password_access: str
    created_at: str
    enable_ssl: bool = False
    ssl_verify: bool = True
    access_user: str | None = None
    spec_code: str = ""
    capacity: int = 0


class ListInstancesResponse(Out):
    instance_num: int
    instances: list[InstanceListInfo]


class ShowInstanceResponse(InstanceListInfo):
    backend_addrs: str


class CreateInstanceResponse(Out):
    instance_id: str
    name: str


class ShowJobInfoResponse(Out):
    job_id: str
    job_type: str
    status: str
    begin_time: str
    end_time: str | None = None
    fail_reason: str | None = None


class TokenResponse(Out):
    token: Annotated[str, Field(repr=False)]  # a bearer credential: out of repr()
    expires_at: str
