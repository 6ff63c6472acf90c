"""Engine, schema upgrade at start-up, and running repository functions off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from cachemigrate.engine.private_files import private_dir, touch_private

P = ParamSpec("P")
R = TypeVar("R")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for memory and URI (file:...) databases."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path is not None:
            # The tasks' secrets are encrypted, but the rest is the projects' business: 0600 in a
            # 0700 directory. SQLite gives its -wal, -shm and -journal files the database's mode.
            private_dir(path.parent)
            touch_private(path)  # an empty file is an empty SQLite database
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> None:
    """Apply the Alembic migrations shipped in the package (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several processes (serves, workers) may start together: one upgrades at a time.
            conn.execute(text("SELECT pg_advisory_xact_lock(7366827)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """Runs keyword-only repository functions in a worker thread, one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def run_sync(self, fn: Callable[Concatenate[Session, P], R], *args: P.args, **kw: P.kwargs) -> R:
        with self._sessions.begin() as session:
            return fn(session, *args, **kw)

    async def call(self, fn: Callable[Concatenate[Session, P], R], *args: P.args, **kw: P.kwargs) -> R:
        def work() -> R:
            return self.run_sync(fn, *args, **kw)

        return await anyio.to_thread.run_sync(work)

    async def call_abandoning(self, fn: Callable[..., R], **kw: Any) -> R:
        """``call``, but a cancelled caller does not wait for the database's answer (the thread
        finishes its transaction alone): a run under a lease that must stop at once (a database
        that does not answer cannot hold it)."""

        def work() -> R:
            return self.run_sync(fn, **kw)

        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)

    def dispose(self) -> None:
        self.engine.dispose()
