"""The HTTP edge: each domain error answers with the DCS status, code and message the service
answered with when domain code still raised HTTP-shaped errors (the SDK and TF read them)."""

from __future__ import annotations

import pytest

from cachemigrate.errors import (
    CacheMigrateError,
    ConfigError,
    CredentialsError,
    ForbiddenError,
    InvalidParameterError,
    MigrationError,
    NotFoundError,
    PasswordRejectedError,
    ProjectIdError,
    QuotaError,
    ScopeError,
    StateError,
)
from cachemigrate.service.api.errors import dcs_error

TASK_STATE = StateError(
    "Operation stop is not allowed when the task is SUCCESS.", kind="task", state="SUCCESS", operation="stop"
)
BACKUP_STATE = StateError(
    "The backup record b-1 is failed; only a succeed backup can be restored.",
    kind="backup", state="failed", operation="restore",
)


@pytest.mark.parametrize(
    ("exc", "status", "code", "message"),
    [
        (NotFoundError("task", "t-1"), 400, "DCS.4133", "The migration task does not exist."),
        (NotFoundError("instance", "i-1"), 404, "DCS.3022", "The DCS instance does not exist."),
        (NotFoundError("backup", "b-1"), 400, "DCS.4087", "The backup record b-1 does not exist."),
        (NotFoundError("job", "j-1"), 400, "DCS.4063",
         "Invalid job_id parameter in the request: no such job."),
        (TASK_STATE, 400, "DCS.4957", "Operation stop is not allowed when the task is SUCCESS."),
        (BACKUP_STATE, 400, "DCS.4087",
         "The backup record b-1 is failed; only a succeed backup can be restored."),
        (
            StateError("b-2 is backuping", kind="backup", state="backuping", operation="restore"),
            400, "DCS.4087", "b-2 is backuping",
        ),
        (
            StateError("b-2 is backuping", kind="backup", state="backuping", operation="delete"),
            400, "DCS.4096", "b-2 is backuping",
        ),
        (
            StateError("b-3 is imported", kind="backup", state="restoring", operation="delete"),
            400, "DCS.4097", "b-3 is imported",
        ),
        (InvalidParameterError("resume_mode"), 400, "DCS.4063",
         "Invalid resume_mode parameter in the request."),
        (
            InvalidParameterError("source_instance.db", "a database index"),
            400, "DCS.4063", "Invalid source_instance.db parameter in the request: a database index",
        ),
        (
            PasswordRejectedError("source_instance"),
            400, "DCS.4080", "Password verification of source_instance failed.",
        ),
        (
            PasswordRejectedError("addrs", "Instance password verification failed."),
            400, "DCS.4080", "Instance password verification failed.",
        ),
        (
            QuotaError("The migration task quota of the project is used up.", what="tasks", limit=3),
            400, "DCS.4039", "The migration task quota of the project is used up.",
        ),
        (ProjectIdError("The project ID has an invalid format."), 400, "DCS.4002",
         "The project ID has an invalid format."),
        (
            CredentialsError("verify aksk signature fail"),
            401, "APIG.0301", "Incorrect IAM authentication information: verify aksk signature fail",
        ),
        (
            ScopeError("The project does not match the credentials of the request."),
            403, "DCS.1004", "The project does not match the credentials of the request.",
        ),
        (
            ForbiddenError("An X-Auth-Token cannot issue tokens: sign the request with the AK/SK."),
            403, "DCS.2007", "An X-Auth-Token cannot issue tokens: sign the request with the AK/SK.",
        ),
    ],
)
def test_domain_errors_answer_as_before(exc: CacheMigrateError, status: int, code: str, message: str) -> None:
    err = dcs_error(exc)
    assert err is not None
    assert (err.status, err.code, err.message) == (status, code, message)


@pytest.mark.parametrize(
    "exc",
    [ConfigError("the backup store is misconfigured: bucket 'x'"), MigrationError("x"),
     NotFoundError("something-new", "x"), StateError("x", kind="something-new", state="s", operation="o")],
)
def test_errors_that_are_ours_are_not_the_callers(exc: CacheMigrateError) -> None:
    """An operator's setting or an unknown kind is a 500 (rendered by the handler), never a 4xx."""
    assert dcs_error(exc) is None
