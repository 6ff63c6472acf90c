"""The Alembic migrations, applied to an empty database, give exactly the SQLAlchemy models: a model
changed without a migration (or a migration that differs from its model) fails here. On SQLite
and on PostgreSQL (a schema of our own on 127.0.0.1:5432)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect

from cachemigrate.service.db.models import Base
from cachemigrate.service.db.session import make_engine, upgrade
from support.pg import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'drift.db'}"
        return
    with pg_schema("drift") as (_, url):
        yield url


def _diff(url: str, metadata: MetaData) -> tuple[list[Any], set[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata), set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_migrations_equal_the_models(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    diff, tables = _diff(empty_database, Base.metadata)
    assert diff == [], "models and migrations differ: write a migration for\n" + "\n".join(map(str, diff))
    assert tables == {*Base.metadata.tables, "alembic_version"}

    # Not a vacuous check: a model with one more column than the migrations made is a difference.
    altered = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(altered)
    altered.tables["tasks"].append_column(Column("drift_probe", Integer))
    diff, _ = _diff(empty_database, altered)
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "tasks", "drift_probe")], diff
