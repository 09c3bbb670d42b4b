"""Table definitions (SQLAlchemy Core). Alembic migrations create them; keep both in step."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# BigInteger on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # As given, with the domain lowercased; NULL once erased.
    Column("email", String(320), nullable=True),
    # Case-insensitive identity: unique; NULL once erased.
    Column("email_key", String(320), nullable=True, unique=True),
    # Salted hash of email_key kept after erasure so the address stays suppressed.
    Column("erased_hash", String(64), nullable=True, unique=True),
    Column("name", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("topics", JSON, nullable=False, default=list),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=True),
    Column("paused_until", DateTime(timezone=True), nullable=True),
    Column("erased_at", DateTime(timezone=True), nullable=True),
    Column("confirm_sent_at", DateTime(timezone=True), nullable=True),
    Column("confirm_sent_count", Integer, nullable=False, default=0, server_default="0"),
    # The import run that last touched the row: duplicates within one file are found by it.
    Column("last_import_id", Id, nullable=True),
    Index("ix_subscribers_status", "status"),
)

subscriber_events = Table(
    "subscriber_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, ForeignKey("subscribers.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("old_status", String(16), nullable=True),
    Column("new_status", String(16), nullable=True),
    Column("source", String(32), nullable=False),
    Column("detail", Text, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", Text, nullable=True),
    Index("ix_subscriber_events_subscriber", "subscriber_id", "id"),
)

imports = Table(
    "imports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("file", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("report", JSON, nullable=True),
)
