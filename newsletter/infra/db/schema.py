"""Table definitions (SQLAlchemy Core). Alembic migrations create them; keep both in step."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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

sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue_slug", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    # The one frozen render every recipient gets, placeholders and all.
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("transport", String(16), nullable=False),
    Column("topic", String(40), nullable=True),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("total", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id"), nullable=False),
    Column("subscriber_id", Id, ForeignKey("subscribers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    # Set, and committed, just before the transport call: the line between "never sent"
    # and "perhaps sent" when a worker dies.
    Column("handed_at", DateTime(timezone=True), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("provider_message_id", String(255), nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("send_id", "subscriber_id", name="uq_deliveries_send_subscriber"),
    Index("ix_deliveries_send_status", "send_id", "status", "id"),
)

# Which snippets a send carried, and the hash of each snippet file's text at the time:
# reuse tracking (services/reuse.py). Written with the send, in its transaction.
send_snippets = Table(
    "send_snippets",
    metadata,
    Column("send_id", Id, ForeignKey("sends.id"), nullable=False),
    Column("snippet_id", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("send_id", "snippet_id", name="pk_send_snippets"),
    Index("ix_send_snippets_snippet", "snippet_id", "send_id"),
)

workers = Table(
    "send_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("send_id", Id, ForeignKey("sends.id"), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # One issue at one time, or a recurring rule (a cron line) that sends the oldest
    # ready, never-sent issue at each firing.
    Column("issue_slug", String(200), nullable=True),
    Column("cron", String(100), nullable=True),
    Column("timezone", String(64), nullable=False),
    # When it fires next (UTC); NULL once it has nothing left to fire.
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("topic", String(40), nullable=True),
    Column("transport", String(16), nullable=True),
    Column("again", Boolean, nullable=False, default=False, server_default="0"),
    # scheduled | firing | fired | skipped | missed | failed | cancelled
    Column("state", String(16), nullable=False),
    Column("send_id", Id, ForeignKey("sends.id"), nullable=True),
    Column("outcome", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(255), nullable=False),
    Index("ix_schedules_state_due", "state", "due_at"),
)

daemons = Table(
    "daemons",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # active | standby
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(16), nullable=False),
    # The provider's own id (SendGrid's sg_event_id): a retried post changes nothing.
    Column("event_id", String(100), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("email", String(320), nullable=True),  # cleared by erasure
    Column("subscriber_id", Id, nullable=True),
    Column("send_id", Id, nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("detail", Text, nullable=True),  # reason, bounce type, URL; cleared by erasure
    Column("machine", Boolean, nullable=False, default=False, server_default="0"),
    Index("ix_provider_events_send_kind", "send_id", "kind"),
    Index("ix_provider_events_subscriber", "subscriber_id"),
)
