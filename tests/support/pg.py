"""PostgreSQL for tests: the machine's server on 127.0.0.1:5432 (trust, user root, db test), one
fresh schema per use, dropped afterwards. Unreachable: a CI failure, a local skip (support.require)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from support.require import require

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=root connect_timeout=3"
PG_HOW = (
    "PostgreSQL on 127.0.0.1:5432 (trust, user root, db test): make test starts an installed one "
    "(pg_ctlcluster --skip-systemctl-redirect <version> main start) and installs it with apt-get"
)


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be reached, or None when it can."""
    try:
        with psycopg.connect(PG_DSN):
            return None
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__


@contextmanager
def pg_schema(prefix: str = "cm") -> Iterator[tuple[str, str]]:
    """A new schema: yields (schema name, SQLAlchemy URL whose search_path is that schema)."""
    reason = pg_unreachable()
    require(reason is None, f"{PG_HOW} ({reason})")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema, f"postgresql+psycopg://root@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
