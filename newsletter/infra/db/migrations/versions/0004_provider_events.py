"""Provider events (SendGrid's Event Webhook), stored once each.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("subscriber_id", Id, nullable=True),
        sa.Column("send_id", Id, nullable=True),
        sa.Column("occurred_at", Stamp, nullable=True),
        sa.Column("received_at", Stamp, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("machine", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_index("ix_provider_events_send_kind", "provider_events", ["send_id", "kind"])
    op.create_index("ix_provider_events_subscriber", "provider_events", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_provider_events_subscriber", table_name="provider_events")
    op.drop_index("ix_provider_events_send_kind", table_name="provider_events")
    op.drop_table("provider_events")
