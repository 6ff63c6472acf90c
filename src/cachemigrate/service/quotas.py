"""Per-project quotas (Settings ``max_tasks_per_project``, ``max_instances_per_project``,
``max_backups_per_project``): what the project has is counted by a query before one more is added.

The count and the insert are two transactions: requests racing for the last place may both get
it. A quota bounds what one project can pile up, it is not an exact ledger.
"""

from __future__ import annotations

from collections.abc import Callable

from cachemigrate.errors import QuotaError
from cachemigrate.service.db.session import Database


async def check(db: Database, count: Callable[..., int], *, project_id: str, limit: int, what: str) -> None:
    """QuotaError (400 DCS.4039) when the project already has ``limit`` ``what``s (``count`` them)."""
    if await db.call(count, project_id=project_id) >= limit:
        raise QuotaError(f"The {what} quota of the project is used up ({limit}).", what=what, limit=limit)
