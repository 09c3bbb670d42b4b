"""The snippets each send carried (id, hash of the file's text, position): reuse tracking.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "send_snippets",
        sa.Column("send_id", Id, sa.ForeignKey("sends.id"), nullable=False),
        sa.Column("snippet_id", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("send_id", "snippet_id", name="pk_send_snippets"),
    )
    op.create_index("ix_send_snippets_snippet", "send_snippets", ["snippet_id", "send_id"])


def downgrade() -> None:
    op.drop_index("ix_send_snippets_snippet", table_name="send_snippets")
    op.drop_table("send_snippets")
