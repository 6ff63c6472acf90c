"""The db mode of a migration (``PipelineOptions.db_mode``) applied to source databases.

The one place for the rules every source follows (RDB keys, AOF commands, the replication
stream, the flush before a full resync): the target db of a source db, and what becomes of the
commands that act on whole databases.

| mode | source db n goes to                           | FLUSHALL becomes    | SWAPDB         |
|------|-----------------------------------------------|---------------------|----------------|
| keep | db n                                          | FLUSHALL (every db) | sent as it is  |
| fold | db 0                                          | FLUSHDB in db 0     | dropped (*)    |
| only | n = ``db``: ``target_db`` (default n); others: | FLUSHDB in that db  | dropped (*)    |
|      | left out                                      |                     |                |

(*) it cannot be mapped: two source dbs that are one target db, or one that is not migrated.

The filter rules' db rules (``FilterRules``: allow/block db, a db map N->M) come first: a db
they leave out is left out, a db they map goes where the map says, whatever the mode; the mode
places the others. With db rules, FLUSHALL is not forwarded (it would empty target dbs the rules
leave alone; ``flushall`` returns None) and SWAPDB is dropped (*).

A cluster target has only db 0: a source db that would go elsewhere is an
IncompatibleTargetError, raised as soon as that db is seen.
"""

from __future__ import annotations

from cachemigrate.engine.entry import Arg
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.errors import ConfigError, IncompatibleTargetError


class DbMap:
    """``target(db)``: the target db of source db ``db`` (None: left out). ``known`` holds every
    db looked up so far, for a plain dict lookup on hot paths (a miss goes through ``target``)."""

    def __init__(self, options: PipelineOptions, *, cluster: bool = False) -> None:
        if options.db_mode is DbMode.ONLY and options.db is None:
            raise ConfigError("db mode 'only' needs the source db to migrate")
        if cluster and options.db_mode is DbMode.ONLY and (options.target_db or 0) != 0:
            raise IncompatibleTargetError("a cluster target has only db 0")
        self.options = options
        self.cluster = cluster
        self.known: dict[int, int | None] = {}

    def target(self, db: int) -> int | None:
        try:
            return self.known[db]
        except KeyError:
            pass
        o = self.options
        mapped: int | None
        rules = o.filters
        ruled: int | None = None
        if rules is not None and rules.has_db_rules:
            migrated, ruled = rules.db_target(db)
            if not migrated:
                self.known[db] = None
                return None
        if ruled is not None:
            mapped = ruled
        elif o.db_mode is DbMode.FOLD:
            mapped = 0
        elif o.db_mode is DbMode.ONLY:
            mapped = (db if o.target_db is None else o.target_db) if db == o.db else None
        else:
            mapped = db
        if mapped and self.cluster:
            raise IncompatibleTargetError(
                f"source db {db} cannot go to a cluster target (it has only db 0): "
                "use db mode 'fold' or 'only'"
            )
        self.known[db] = mapped
        return mapped

    def flushall(self, argv: list[Arg]) -> tuple[list[Arg], int] | None:
        """What a source ``FLUSHALL [ASYNC|SYNC]`` becomes: (argv, target db; -1: every db), None
        when it is not forwarded (db rules). Also what empties the target before a new full sync."""
        o = self.options
        if o.filters is not None and o.filters.has_db_rules:
            return None
        if o.db_mode is DbMode.KEEP:
            return argv, -1
        db = self.target(o.db if o.db_mode is DbMode.ONLY and o.db is not None else 0)
        assert db is not None  # fold: 0; only: the db that is migrated
        return [b"FLUSHDB", *argv[1:]], db

    @property
    def swapdb(self) -> bool:
        """Whether SWAPDB can be sent as it is (keep mode only)."""
        o = self.options
        return o.db_mode is DbMode.KEEP and not (o.filters is not None and o.filters.has_db_rules)
