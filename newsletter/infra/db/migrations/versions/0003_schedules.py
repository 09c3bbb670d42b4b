"""Schedules (planned and recurring sends) and the daemons that fire them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("issue_slug", sa.String(200), nullable=True),
        sa.Column("cron", sa.String(100), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("due_at", Stamp, nullable=True),
        sa.Column("topic", sa.String(40), nullable=True),
        sa.Column("transport", sa.String(16), nullable=True),
        sa.Column("again", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("send_id", Id, sa.ForeignKey("sends.id"), nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_schedules_state_due", "schedules", ["state", "due_at"])
    op.create_table(
        "daemons",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("heartbeat_at", Stamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daemons")
    op.drop_index("ix_schedules_state_due", table_name="schedules")
    op.drop_table("schedules")
