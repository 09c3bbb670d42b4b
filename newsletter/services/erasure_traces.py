"""What an erasure must clear beyond the subscriber's own row: free text in the consent log,
providers' replies and provider events that may name the person, and on SQLite the old
page images that still hold them.

`SubscriberStore.erase` clears the row itself and keeps the salted hash; these are the
traces elsewhere, kept apart so the list of places a person can linger is read in one go.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, or_, update

from newsletter.infra.db.schema import deliveries, provider_events, subscriber_events


def clear_traces(connection: Connection, subscriber_id: int, email: str) -> None:
    """Inside the erasing transaction, after the row is cleared."""
    connection.execute(  # free text may hold personal data too
        update(subscriber_events)
        .where(subscriber_events.c.subscriber_id == subscriber_id)
        .values(ip=None, user_agent=None, detail=None)
    )
    connection.execute(  # providers' replies, in case one named the person
        update(deliveries)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .values(last_error=None)
    )
    connection.execute(  # provider events name the address and may hold a URL
        update(provider_events)
        .where(
            or_(
                provider_events.c.subscriber_id == subscriber_id,
                func.lower(provider_events.c.email) == email.lower(),
            )
        )
        .values(email=None, detail=None)
    )


def clear_old_pages(engine: Engine) -> None:
    """After the erasing transaction commits."""
    if engine.dialect.name == "sqlite":
        # Old page images wait in the write-ahead log until a checkpoint: write them
        # back now (secure_delete zeroes freed space) so the file forgets the person.
        raw = engine.raw_connection()  # outside a transaction, as PRAGMAs need
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
