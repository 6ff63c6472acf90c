"""The db mode applied to source dbs, keys and whole-database commands (engine/dbmap.py)."""

from __future__ import annotations

import pytest

from cachemigrate.engine.dbmap import DbMap
from cachemigrate.engine.spec import DbMode, PipelineOptions
from cachemigrate.errors import ConfigError, IncompatibleTargetError


@pytest.mark.parametrize(
    ("options", "targets", "flushall", "swapdb"),
    [
        (PipelineOptions(), {0: 0, 3: 3}, ([b"FLUSHALL", b"ASYNC"], -1), True),
        (PipelineOptions(db_mode=DbMode.FOLD), {0: 0, 3: 0}, ([b"FLUSHDB", b"ASYNC"], 0), False),
        (PipelineOptions(db_mode=DbMode.ONLY, db=3), {0: None, 3: 3}, ([b"FLUSHDB", b"ASYNC"], 3), False),
        (PipelineOptions(db_mode=DbMode.ONLY, db=3, target_db=1), {0: None, 3: 1},
         ([b"FLUSHDB", b"ASYNC"], 1), False),
    ],
)
def test_the_table(
    options: PipelineOptions, targets: dict[int, int | None], flushall: tuple[list[bytes], int], swapdb: bool
) -> None:
    m = DbMap(options)
    assert {db: m.target(db) for db in targets} == targets
    assert m.known == targets
    assert m.flushall([b"FLUSHALL", b"ASYNC"]) == flushall
    assert m.swapdb is swapdb


def test_a_cluster_target_has_only_db_0() -> None:
    assert DbMap(PipelineOptions(db_mode=DbMode.FOLD), cluster=True).target(5) == 0
    m = DbMap(PipelineOptions(), cluster=True)
    assert m.target(0) == 0
    with pytest.raises(IncompatibleTargetError, match="source db 4"):
        m.target(4)
    with pytest.raises(IncompatibleTargetError):
        DbMap(PipelineOptions(db_mode=DbMode.ONLY, db=2, target_db=2), cluster=True)


def test_only_needs_the_db() -> None:
    with pytest.raises(ConfigError, match="db mode 'only'"):
        DbMap(PipelineOptions(db_mode=DbMode.ONLY))
