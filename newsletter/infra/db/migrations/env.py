"""Alembic environment: always given a live connection by newsletter.infra.db.engine."""

from __future__ import annotations

from alembic import context

from newsletter.infra.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
context.run_migrations()
