"""The backup records' wire models (the SDK's backup models): a backup asked of an instance, and
how its records are answered."""

from __future__ import annotations

from cachemigrate.service.api.fields import Description, In, Out, Word


class BackupInstanceBody(In):
    remark: Description | None = None
    backup_format: Word | None = None


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
