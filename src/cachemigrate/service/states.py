"""Task status vocabulary (spec §5.2) and the guards of the state machine (§5.4)."""

from __future__ import annotations

CREATING = "CREATING"
RUNNING = "RUNNING"
MIGRATING = "MIGRATING"
FULLMIGRATING = "FULLMIGRATING"
INCRMIGEATING = "INCRMIGEATING"  # sic: the live service's spelling
INCRMIGRATING_ALIAS = "INCRMIGRATING"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
MIGRATION_FAILED = "MIGRATION_FAILED"

# task_status: the IP switch (spec §5.3, §9.5).
EXCHANGING = "EXCHANGING"
EXCHANGE_SUCCESS = "EXCHANGE_SUCCESS"
EXCHANGE_FAILED = "EXCHANGE_FAILED"
ROLLBACKING = "ROLLBACKING"
ROLLBACK_SUCCESS = "ROLLBACK_SUCCESS"
ROLLBACK_FAILED = "ROLLBACK_FAILED"
SWITCHING = frozenset({EXCHANGING, ROLLBACKING})
# exchange-ip may start from these task_status values (None: never switched) of an INCRMIGEATING
# task: the writes go to the source.
EXCHANGEABLE: tuple[str | None, ...] = (None, EXCHANGE_FAILED, ROLLBACK_SUCCESS)
# The writes go to the target and the reverse sync runs (status TERMINATED, spec §9.5):
# rollback-ip may start from these (a failed rollback left everything as after the exchange).
EXCHANGED = frozenset({EXCHANGE_SUCCESS, ROLLBACK_FAILED})

ONLINE = "online_migration"
IMPORT = "backupfile_import"
FULL = "full_amount_migration"
INCREMENTAL = "incremental_migration"
RESUME_MODES = ("auto", "manual")

# A pipeline is (or should be) executing in these.
EXECUTING = frozenset({MIGRATING, FULLMIGRATING, INCRMIGEATING})
ACTIVE = frozenset({CREATING, MIGRATING, FULLMIGRATING, INCRMIGEATING, TERMINATING})
STOPPABLE = EXECUTING
RESTARTABLE = frozenset({TERMINATED, FAILED, MIGRATION_FAILED})
# set_online may (re)configure an online task in these (§5.4); CREATING too: nothing is created
# for a self-hosted migrator, and a caller need not wait the instant it lasts.
RECONFIGURABLE = frozenset({CREATING, RUNNING, TERMINATED, SUCCESS, FAILED, MIGRATION_FAILED})

# Every value of a task's status (what a status filter may name).
STATUSES = frozenset(
    {CREATING, RUNNING, MIGRATING, FULLMIGRATING, INCRMIGEATING, TERMINATING, TERMINATED, SUCCESS, FAILED,
     MIGRATION_FAILED}
)

SUPPORTED_FEATURES = ["full", "incremental", "resume", "bandwidth_limit", "ip_exchange", "verify"]


def normalize_status(value: str) -> str:
    """Status filters accept the documented misspelling's correction too (spec §9.2)."""
    up = value.strip().upper()
    return INCRMIGEATING if up == INCRMIGRATING_ALIAS else up
