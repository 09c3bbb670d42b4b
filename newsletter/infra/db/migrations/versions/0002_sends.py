"""Sends and their deliveries ledger, one row per recipient, and the workers sending them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sends",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("issue_slug", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("started_at", Stamp, nullable=True),
        sa.Column("finished_at", Stamp, nullable=True),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("send_id", Id, sa.ForeignKey("sends.id"), nullable=False),
        sa.Column("subscriber_id", Id, sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", Stamp, nullable=True),
        sa.Column("handed_at", Stamp, nullable=True),
        sa.Column("next_attempt_at", Stamp, nullable=True),
        sa.Column("finished_at", Stamp, nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("send_id", "subscriber_id", name="uq_deliveries_send_subscriber"),
    )
    op.create_index("ix_deliveries_send_status", "deliveries", ["send_id", "status", "id"])
    op.create_table(
        "send_workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("send_id", Id, sa.ForeignKey("sends.id"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("heartbeat_at", Stamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("send_workers")
    op.drop_index("ix_deliveries_send_status", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("sends")
