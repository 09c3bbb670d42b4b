"""Engine creation and schema upgrades (Alembic), for SQLite and PostgreSQL alike.

Alembic is imported only to migrate: whether a migration is due is decided by comparing
the stored revision (the alembic_version table, read with plain SQLAlchemy) with the
newest revision id of migrations/versions/, read from the files' `revision = "..."` lines.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from newsletter.errors import ConfigError, ExitStatus, NewsletterError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps
UPGRADE_LOCK = 720_514_001  # PostgreSQL advisory lock id: one migrator at a time


class DatabaseError(NewsletterError):
    """The database cannot be reached or used."""

    exit_status = ExitStatus.UNAVAILABLE


def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # BEGIN is issued by _sqlite_begin below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")  # erased data is overwritten, not just freed
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # Writers take the write lock up front (IMMEDIATE): a deferred transaction that reads
    # and then writes can fail with "database is locked" instead of waiting. Readers
    # (see `reading`) begin deferred, so in WAL mode they never wait for a writer.
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def reading(engine: Engine) -> Engine:
    """The same engine for read-only work: on SQLite its transactions do not take the
    write lock, so pages and status checks are not queued behind an import or a send."""
    return engine.execution_options(sqlite_begin="DEFERRED")


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "database_url: not a database URL (expected e.g. postgresql://user@host/db "
            "or sqlite:///path)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def alembic_head_revision() -> str:
    """The head as Alembic's own ScriptDirectory finds it (imports Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


_REVISION = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)


@functools.cache
def head_revision() -> str:
    """The newest migration: the one revision no other revises, from the `revision = "..."`
    and `down_revision = ...` lines of versions/*.py (tests check Alembic agrees). A file
    this cannot read, or several heads, are left to Alembic."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return alembic_head_revision()
        revisions.add(revision.group(1))
        revised.update(re.findall(r"""["']([^"']+)["']""", down.group(1)))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else alembic_head_revision()


def stored_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the alembic_version table holds; none for a new database."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return tuple(rows.scalars())


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply pending migrations; returns (from, to). Safe to call from several processes."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": UPGRADE_LOCK})
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(_alembic_config(connection), "head")
            return before, head_revision()
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from None


@contextlib.contextmanager
def connect(url: str, *, migrate: bool = True) -> Iterator[Engine]:
    """An engine whose schema is current: pending migrations are applied first."""
    engine = make_engine(url)
    try:
        if migrate and _stored_revisions_safe(engine) != (head_revision(),):
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _stored_revisions_safe(engine: Engine) -> tuple[str, ...]:
    try:
        with engine.connect() as connection:
            return stored_revisions(connection)
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from None
