"""Tables. Secrets (SKs, Redis passwords) are stored Fernet-encrypted, never in clear: every such
column is named ``*_enc`` and listed in ``ENCRYPTED`` (what `cachemigrate secrets rotate` re-encrypts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Credential(Base):
    __tablename__ = "credentials"

    access_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    secret_key_enc: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[str] = mapped_column(String(32))
    # Set once: a revoked AK signs nothing and its tokens stop working at once (service/api/deps.py).
    revoked_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The AK that `credentials rotate` issued in its place.
    replaced_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # To the minute: refreshed at most once a minute per AK, so a request does not write each time.
    last_used_at: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    addrs: Mapped[str] = mapped_column(String(1024))
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # How to log in and talk to it: an ACL user (None: the default user), TLS, TLS verification.
    access_user: Mapped[str | None] = mapped_column(String(256), nullable=True)
    enable_ssl: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    ssl_verify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    description: Mapped[str] = mapped_column(String(1024), default="")
    engine_version: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[str] = mapped_column(String(32))
    # Its front (service/fronts.py): driver, address, runtime_api, server; None: it has none.
    front: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_project_deleted", "project_id", "deleted"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1024), default="")
    migration_type: Mapped[str] = mapped_column(String(32))
    migration_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    task_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resume_mode: Mapped[str] = mapped_column(String(16), default="auto")
    bandwidth_limit_mb: Mapped[str | None] = mapped_column(String(16), nullable=True)
    network_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    backup_files: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Endpoint descriptions without passwords: addrs, id, name, db, proxy_multi_db, enable_ssl,
    # ssl_verify, access_user (service/endpoints.py).
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    target_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    tenant_vpc_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant_subnet_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tenant_security_group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    released_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Distributed mode (service/distributed.py): the worker that runs the task, until when (the
    # database's clock), and the fencing generation its writes carry (one more at each claim).
    run_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # What a serve asks of the task's owner (its heartbeat reads it): "start" (a fresh run, not a
    # resume), "stop"; and a checked exchange-ip / rollback-ip (SwitchRequest as JSON).
    control_request: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # (SQL NULL when none, not JSON null: a request is written only where none waits.)
    switch_request: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class TaskLog(Base):
    __tablename__ = "task_logs"
    __table_args__ = (Index("ix_task_logs_task_level", "task_id", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id", ondelete="CASCADE"))
    created_at: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    keyword: Mapped[list[str]] = mapped_column(JSON, default=list)


class TaskCheckpoint(Base):
    __tablename__ = "task_checkpoints"

    task_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(String(32))


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    job_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    begin_time: Mapped[str] = mapped_column(String(20))
    end_time: Mapped[str | None] = mapped_column(String(20), nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Backup(Base):
    """An instance backup (spec §6.16): an RDB in the backup store at ``location``."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_project_instance", "project_id", "instance_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    remark: Mapped[str] = mapped_column(String(1024), default="")
    backup_format: Mapped[str] = mapped_column(String(8), default="rdb")
    backup_type: Mapped[str] = mapped_column(String(16), default="manual")
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[str] = mapped_column(String(16), default="0.00")
    size: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Absolute local path or s3://bucket/key of the RDB; never shown in API responses.
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    execution_at: Mapped[str | None] = mapped_column(String(32), nullable=True)



class Verification(Base):
    """A verification of a migration task's target against its source (engine/verify.py):
    ``report`` is ``VerifyReport.as_dict()`` once it has run (key names are the tenant's data)."""

    __tablename__ = "verifications"
    __table_args__ = (Index("ix_verifications_task", "task_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # RUNNING, SUCCESS, FAILED
    mode: Mapped[str] = mapped_column(String(16))  # full, sampled
    sample: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rounds: Mapped[int] = mapped_column(Integer)
    repair: Mapped[bool] = mapped_column(Boolean, default=False)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))

class Worker(Base):
    """A `cachemigrate worker` process (distributed mode): its heartbeat (the database's clock)
    and what it runs, rewritten at each heartbeat; `cachemigrate workers` lists them."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    slots: Mapped[int] = mapped_column(Integer)
    units: Mapped[list[str]] = mapped_column(JSON, default=list)
    keys_moved: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_moved: Mapped[int] = mapped_column(BigInteger, default=0)
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)


# Every encrypted column, by table: `secrets rotate` re-encrypts exactly these (a test checks that
# each ``*_enc`` column of the models is here).
ENCRYPTED: dict[type[Base], tuple[str, ...]] = {
    Credential: ("secret_key_enc",),
    Instance: ("password_enc",),
    Task: ("source_password_enc", "target_password_enc"),
}
