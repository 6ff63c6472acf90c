"""Wire models, named after the SDK's models. Inputs ignore unknown keys (the SDK echoes output-only
fields back); outputs never carry a password (spec §9.8).

Every input string and list is bounded (``maxLength`` / ``maxItems`` in /openapi.json); an input
over a bound is 400 DCS.4063 naming the field (api/errors.py). The bounds follow the spec where it
has one (names §2.2, descriptions ≤1024, at most 50 IDs per batch call) and are generous
elsewhere: they exist so that no field can carry more than a request plausibly needs.
"""

from __future__ import annotations

import posixpath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cachemigrate.service import states as st


def _number_as_text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# The docs send numbers where the SDK types strings: accept both, keep strings.
LooseStr = Annotated[str, BeforeValidator(_number_as_text)]
# Spec §2.2: the DCS instance-name rule.
Name = Annotated[
    str,
    Field(
        min_length=4,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="4 to 64 characters from letters, digits, _ and -",
    ),
]
Description = Annotated[str, Field(max_length=1024)]
# Task, instance and backup IDs: UUIDs here, 32 hex digits in the docs.
Id = Annotated[str, Field(max_length=64)]
# An enumerated value: checked where it is used (tasks.py, with the DCS error the spec names); the
# values are in the OpenAPI document too, so a generated client or a fuzzer sends what is accepted.
Word = Annotated[str, Field(max_length=32)]
MigrationType = Annotated[str, Field(max_length=32, json_schema_extra={"enum": [st.ONLINE, st.IMPORT]})]
MigrationMethod = Annotated[str, Field(max_length=32, json_schema_extra={"enum": [st.FULL, st.INCREMENTAL]})]
ResumeMode = Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(st.RESUME_MODES)})]
FileSource = Annotated[
    str, Field(max_length=32, json_schema_extra={"enum": ["self_build_obs", "backup_record"]})
]
NetworkType = Annotated[str, Field(max_length=32, json_schema_extra={"enum": ["vpc", "vpn"]})]
# host:port[,host:port...]: a cluster's nodes fit. The pattern documents the shape (the port's
# range, 1-65535, is checked by protocol.endpoint.split_host_port).
_HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}"
Addrs = Annotated[
    str, Field(max_length=1024, json_schema_extra={"pattern": f"^{_HOST_PORT}(,{_HOST_PORT})*$"})
]
# Write-only (spec §9.8): never answered, and kept out of repr() (a logged model shows no password).
# DCS's own rule is 8-64 characters; a self-hosted Redis may use a longer one.
Password = Annotated[
    str | None, Field(max_length=512, repr=False, description="Write-only: never returned, never logged")
]
# A decimal number sent as a string or a JSON number: ASCII digits only (str.isdigit() also takes
# "²" and "٦٣٧٩"); "" means absent. The pattern sits inside the number conversion so that the
# OpenAPI document shows it (outside, pydantic checks it in a step the document leaves out).
Digits = Annotated[str, Field(max_length=5, pattern=r"^[0-9]{0,5}$"), BeforeValidator(_number_as_text)]
# Our extensions of an endpoint (named as in the DCS instance models; service/endpoints.py).
EnableSsl = Annotated[
    bool | None, Field(description="Extension: connect with TLS (what rediss:// says in a URL)")
]
SslVerify = Annotated[
    bool | None, Field(description="Extension, with enable_ssl: false skips verifying the server certificate")
]
AccessUser = Annotated[
    str | None,
    Field(max_length=256, description="Extension: the ACL user to log in as (default user if absent)"),
]
MAX_BATCH = 50  # spec §6.10, §6.11
MAX_DELETE = 1000




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


class BackupInstanceBody(In):
    remark: Description | None = None
    backup_format: Word | None = None


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


# Our extension: the filter rules of a task (engine/filters.py, docs/filters.md), RedisShake's
# [filter] names and ours. The shape is checked here, the meaning (types, groups, regular
# expressions, the Lua function) by FilterRules.from_mapping: both answer 400.
_RuleText = Annotated[str, Field(min_length=1, max_length=1024)]
_RuleList = Annotated[list[_RuleText], Field(max_length=1000)]
_DbNumber = Annotated[int, Field(ge=0, le=(1 << 20) - 1)]
_DbList = Annotated[list[_DbNumber], Field(max_length=1000)]
_Seconds = Annotated[float, Field(ge=0.001, le=100 * 365 * 86400)]


class FilterBody(BaseModel):
    """Extension: what moves and under which name. Block rules first; an allow list given holds
    only what it names; a multi-key command passes whole or is dropped (and logged)."""

    model_config = ConfigDict(extra="forbid")
    _strings_storable = field_validator("*")(_storable)

    allow_key: _RuleList | None = Field(None, description="keys named exactly")
    allow_key_prefix: _RuleList | None = None
    allow_key_suffix: _RuleList | None = None
    allow_key_regex: _RuleList | None = Field(None, description="regular expressions searched in the key")
    block_key: _RuleList | None = None
    block_key_prefix: _RuleList | None = None
    block_key_suffix: _RuleList | None = None
    block_key_regex: _RuleList | None = None
    allow_db: _DbList | None = None
    block_db: _DbList | None = None
    db_map: Annotated[dict[Annotated[str, Field(max_length=7, pattern=r"^[0-9]{1,7}$")],
                           _DbNumber],
                      Field(max_length=1000, description="source db -> target db")] | None = None
    allow_type: _RuleList | None = Field(None, description="string, list, set, zset, hash, stream, module")
    block_type: _RuleList | None = None
    allow_command: _RuleList | None = Field(None, description="incremental phase and AOF commands")
    block_command: _RuleList | None = None
    allow_command_group: _RuleList | None = Field(None, description="STRING, HASH, SCRIPTING...")
    block_command_group: _RuleList | None = None
    skip_expiring_within: _Seconds | None = Field(None, description="seconds: keys expiring sooner stay")
    max_ttl: _Seconds | None = Field(None, description="seconds: longer TTLs (and none) become this")
    rename_prefix: Annotated[dict[_RuleText, Annotated[str, Field(max_length=1024)]],
                             Field(max_length=1000, description="old prefix -> new prefix")] | None = None
    function: Annotated[str, Field(max_length=64 << 10, description="Lua: RedisShake's function API")] \
        | None = None


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


class FrontBody(In):
    """Our extension: the instance's front, the stable address its clients connect to (what DCS
    calls the instance's IP), which exchange-ip and rollback-ip move between servers."""

    driver: Annotated[
        str, Field(max_length=32, json_schema_extra={"enum": ["haproxy"]},
                   description="haproxy: one `server` of a `mode tcp` backend, driven through "
                   "HAProxy's Runtime API (admin level)")
    ]
    address: Annotated[
        str, Field(max_length=300, json_schema_extra={"pattern": f"^{_HOST_PORT}$"},
                   description="where clients connect (host:port): what `exchanged_ip` names")
    ]
    runtime_api: Annotated[
        str, Field(max_length=300, description="the Runtime API: `host:port`, or the absolute path of "
                   "its unix socket in a directory the operator allows (`front_socket_dirs`)")
    ]
    server: Annotated[
        str, Field(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+/[A-Za-z0-9_.:-]+$",
                   description="`<backend>/<server>`: the server slot the front forwards to")
    ]


class CreateInstanceBody(In):
    """Our extension (spec §9.12): register an existing Redis endpoint in the inventory."""

    name: Name
    addrs: Annotated[Addrs, Field(min_length=3)]
    password: Password = None
    description: Description | None = None
    enable_ssl: EnableSsl = None
    ssl_verify: SslVerify = None
    access_user: AccessUser = None
    front: FrontBody | None = None


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


class FrontInfo(Out):
    driver: str
    address: str
    runtime_api: str
    server: str


class ShowInstanceResponse(InstanceListInfo):
    backend_addrs: str
    front: FrontInfo | None = None


class CreateInstanceResponse(Out):
    instance_id: str
    name: str


class ConnectionTestResponse(Out):
    """A cachemigrate extension: a registered instance answered just now."""

    instance_id: str
    reachable: bool
    engine: str = Field(description="Who answered: redis or valkey")
    engine_version: str


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


# --- verifications (a cachemigrate extension of the DCS API) ---------------------------------------

MAX_VERIFY_SAMPLE = 100_000  # engine/verify.py MAX_TRACKED: every difference found stays tracked
MAX_VERIFY_ROUNDS = 10


class CreateVerificationBody(In):
    mode: Literal["full", "sampled"] = Field(
        default="full",
        description="full: every key of both sides; sampled: about `sample` random keys of each",
    )
    sample: Annotated[int, Field(ge=1, le=MAX_VERIFY_SAMPLE)] | None = Field(
        default=None, description="With mode sampled (required there): about this many random keys per side"
    )
    rounds: Annotated[int, Field(ge=0, le=MAX_VERIFY_ROUNDS)] = Field(
        default=3, description="Re-checks of the keys that differ (writes in flight converge), 0.5 s apart"
    )
    repair: bool = Field(
        default=False, description="Copy each key still different again from the source (delete an extra key)"
    )


class CreateVerificationResponse(Out):
    verification_id: str
    status: str


class MismatchCounts(Out):
    missing: int = Field(description="in the source, not in the target")
    extra: int = Field(description="in the target, not in the source")
    type: int
    value: int
    ttl: int = Field(description="expire times beyond the tolerance (1 s), or on one side only")


class MismatchExample(Out):
    db: int
    key: str = Field(description="The key name (undecodable bytes backslash-escaped)")
    kind: str
    reason: str


class VerificationReport(Out):
    ok: bool
    keys_compared: int
    mismatches: int = Field(description="Keys still different at the end (after re-checks and repair)")
    by_kind: MismatchCounts
    first_pass: MismatchCounts = Field(description="What the first look found, before any re-check")
    converged: int = Field(description="Differences that matched on a re-check (writes in flight)")
    rounds: int
    repaired: int
    repair_failed: int
    untracked: int
    in_flight: int = Field(0, description="Keys the source changed again at every re-check: written "
                           "faster than the re-checks, neither matched nor mismatched, not repaired "
                           "(exchange-ip compares them exactly while writes are paused)")
    examples: list[MismatchExample] = Field(description="At most 50 of the keys still different")
    seconds: float
    log: list[str] = Field(
        default_factory=list, description="At most 20 lines of what the repair said (keys refused)"
    )


class VerificationInfo(Out):
    verification_id: str
    task_id: str
    status: str = Field(description="RUNNING, SUCCESS (it ran: see report.mismatches) or FAILED")
    mode: str
    sample: int | None = None
    rounds: int
    repair: bool
    created_at: str
    updated_at: str
    error_message: str | None = None
    report: VerificationReport | None = None


class ListVerificationsResponse(Out):
    total_num: int
    verifications: list[VerificationInfo]


class WorkerInfo(Out):
    worker_id: str
    heartbeat_age_seconds: float = Field(
        description="Seconds since its last heartbeat (the database's clock)")
    slots: int = Field(description="Units it runs at most at the same time")
    load: int = Field(description="Units it runs now (any project's)")
    units: list[str] = Field(description="This project's tasks it runs now")
    stopped: bool = Field(description="It stopped cleanly (its row stays until it starts again)")


class ListWorkersResponse(Out):
    execution_mode: str
    workers: list[WorkerInfo]
