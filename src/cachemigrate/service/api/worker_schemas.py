"""The workers of the distributed mode as answered (extension: GET /v2/{project_id}/workers)."""

from __future__ import annotations

from pydantic import Field

from cachemigrate.service.api.fields import Out


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
