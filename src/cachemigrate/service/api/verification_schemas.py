"""The verifications' wire models (a cachemigrate extension of the DCS API): a verification of
a task's target against its source asked for, and its report."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cachemigrate.service.api.fields import In, Out

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
