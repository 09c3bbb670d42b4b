"""Subscribers, their consent event log, import runs, and a key-value meta table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # The salt that keeps erased addresses suppressed; made here so no two first requests race.
    op.execute(
        sa.table("meta", sa.column("key"), sa.column("value"))
        .insert()
        .values(key="erasure_salt", value=secrets.token_hex(16))
    )
    op.create_table(
        "subscribers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("email_key", sa.String(320), nullable=True, unique=True),
        sa.Column("erased_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("confirmed_at", Stamp, nullable=True),
        sa.Column("unsubscribed_at", Stamp, nullable=True),
        sa.Column("paused_until", Stamp, nullable=True),
        sa.Column("erased_at", Stamp, nullable=True),
        sa.Column("confirm_sent_at", Stamp, nullable=True),
        sa.Column("confirm_sent_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_import_id", Id, nullable=True),
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"])
    op.create_table(
        "subscriber_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", Id, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.Text, nullable=True),
    )
    op.create_index("ix_subscriber_events_subscriber", "subscriber_events", ["subscriber_id", "id"])
    op.create_table(
        "imports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp, nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("imports")
    op.drop_index("ix_subscriber_events_subscriber", "subscriber_events")
    op.drop_table("subscriber_events")
    op.drop_index("ix_subscribers_status", "subscribers")
    op.drop_table("subscribers")
    op.drop_table("meta")
