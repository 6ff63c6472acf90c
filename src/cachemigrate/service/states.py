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

EXCHANGING = "EXCHANGING"
ROLLBACKING = "ROLLBACKING"

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

SUPPORTED_FEATURES = ["full", "incremental", "resume", "bandwidth_limit"]


def normalize_status(value: str) -> str:
    """Status filters accept the documented misspelling's correction too (spec §9.2)."""
    up = value.strip().upper()
    return INCRMIGEATING if up == INCRMIGRATING_ALIAS else up
