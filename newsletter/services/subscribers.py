"""The subscriber list: adding, finding, changing status with a consent record, erasing.

Also the checks every caller makes on an address, a name or topics, and the erasure salt
that keeps an erased address suppressed. The consent log and the status changes that
write to it are in `consent_log`; what an erasure clears beyond the row, in
`erasure_traces`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, String, cast, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.domain.subscriber import (
    SUPPRESSED,
    Address,
    EventRecord,
    InvalidAddress,
    Source,
    Status,
    SubscriberRecord,
    clean_name,
    clean_topics,
    erased_hash,
    normalize_address,
)
from newsletter.errors import InputError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import meta, subscribers
from newsletter.services.consent_log import (
    change_status_in,
    events_of,
    record_event,
    timestamps_for,
)
from newsletter.services.erasure_traces import clear_old_pages, clear_traces

SALT_KEY = "erasure_salt"


class NotFound(InputError):
    pass


@dataclass(frozen=True)
class Context:
    """Who or what caused a change: recorded with the event."""

    source: Source
    detail: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def to_record(row: Any) -> SubscriberRecord:
    return SubscriberRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        status=Status(row.status),
        topics=list(row.topics or []),
        attributes=dict(row.attributes or {}),
        created_at=utc(row.created_at),
        confirmed_at=utc(row.confirmed_at),
        unsubscribed_at=utc(row.unsubscribed_at),
        paused_until=utc(row.paused_until),
        erased_at=utc(row.erased_at),
    )


def follows_topic(topic: str) -> Any:
    """Topics are slugs, so a JSON list holds one exactly as `"topic"`: SQLite and PostgreSQL
    can both test that on the JSON's text form."""
    return cast(subscribers.c.topics, String).like(f'%"{topic}"%')


def checked_name(name: str | None) -> str | None:
    try:
        return clean_name(name)
    except ValueError as exc:
        raise InputError(f"name: {exc}") from None


def checked_topics(topics: Sequence[str]) -> list[str]:
    try:
        return clean_topics(topics)
    except ValueError as exc:
        raise InputError(f"topic: {exc}") from None


def parse_address(raw: str) -> Address:
    try:
        return normalize_address(raw)
    except InvalidAddress as exc:
        raise InputError(f"invalid email address {raw!r}: {exc}") from None


def erasure_salt(connection: Connection) -> str:
    """A random salt made once per database (by the first migration), kept in `meta`."""
    salt = connection.execute(select(meta.c.value).where(meta.c.key == SALT_KEY)).scalar()
    if salt is None:  # a database from before the salt was made by the migration
        with contextlib.suppress(IntegrityError), connection.begin_nested():
            # Another process may make it first: then theirs is the one.
            connection.execute(insert(meta).values(key=SALT_KEY, value=secrets.token_hex(16)))
        salt = connection.execute(select(meta.c.value).where(meta.c.key == SALT_KEY)).scalar_one()
    return salt


def is_erased(connection: Connection, address: Address) -> bool:
    digest = erased_hash(address.key, erasure_salt(connection))
    found = connection.execute(
        select(subscribers.c.id).where(subscribers.c.erased_hash == digest)
    ).first()
    return found is not None


class SubscriberStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = reading(engine)

    # -- reading ---------------------------------------------------------------------------

    def find(self, email: str) -> SubscriberRecord | None:
        address = parse_address(email)
        with self.reader.connect() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.email_key == address.key)
            ).first()
        return to_record(row) if row else None

    def get(self, email: str) -> SubscriberRecord:
        record = self.find(email)
        if record is None:
            raise NotFound(f"no subscriber {email!r}")
        return record

    def get_by_id(self, subscriber_id: int) -> SubscriberRecord | None:
        with self.reader.connect() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.id == subscriber_id)
            ).first()
        return to_record(row) if row else None

    def events(self, subscriber_id: int) -> list[EventRecord]:
        with self.reader.connect() as connection:
            return events_of(connection, subscriber_id)

    def _filtered(self, statuses: Sequence[Status] = (), topic: str | None = None):  # type: ignore[no-untyped-def]
        query = select(subscribers).where(subscribers.c.erased_at.is_(None))
        if statuses:
            query = query.where(subscribers.c.status.in_([str(s) for s in statuses]))
        if topic:
            query = query.where(follows_topic(topic))
        return query

    def list(
        self,
        statuses: Sequence[Status] = (),
        topic: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[SubscriberRecord]:
        query = self._filtered(statuses, topic).order_by(subscribers.c.id)
        with self.reader.connect() as connection:
            rows = connection.execute(query.limit(limit).offset(offset))
            return [to_record(row) for row in rows]

    def iterate(
        self, statuses: Sequence[Status] = (), topic: str | None = None, batch: int = 2000
    ) -> Iterator[SubscriberRecord]:
        """All matching subscribers in id order, fetched in batches (constant memory)."""
        after = 0
        while True:
            query = (
                self._filtered(statuses, topic)
                .where(subscribers.c.id > after)
                .order_by(subscribers.c.id)
                .limit(batch)
            )
            with self.reader.connect() as connection:
                rows = connection.execute(query).fetchall()
            if not rows:
                return
            for row in rows:
                yield to_record(row)
            after = rows[-1].id

    def count(self, topic: str | None = None) -> dict[str, int]:
        query = self._filtered((), topic).subquery()
        grouped = select(query.c.status, func.count()).group_by(query.c.status)
        with self.reader.connect() as connection:
            found = {status: n for status, n in connection.execute(grouped)}
        return {str(s): found.get(str(s), 0) for s in Status}

    # -- changing --------------------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        name: str | None = None,
        topics: Sequence[str] = (),
        status: Status = Status.ACTIVE,
        context: Context,
    ) -> SubscriberRecord:
        if status not in (Status.ACTIVE, Status.PENDING):
            raise InputError("a new subscriber starts as active or pending")
        address = parse_address(email)
        name, topics = checked_name(name), checked_topics(topics)
        at = now()
        with self.engine.begin() as connection:
            if is_erased(connection, address):
                raise InputError(f"{email!r} was erased and stays suppressed")
            try:
                new_id = connection.execute(
                    insert(subscribers)
                    .values(
                        email=address.email,
                        email_key=address.key,
                        name=name,
                        status=str(status),
                        topics=sorted(set(topics)),
                        attributes={},
                        created_at=at,
                        **timestamps_for(status, at),
                    )
                    .returning(subscribers.c.id)
                ).scalar_one()
            except IntegrityError:
                raise InputError(f"{address.email!r} is already on the list") from None
            record_event(connection, new_id, "created", context, None, status, at)
        return self.get(address.email)

    def change_status(
        self,
        subscriber_id: int,
        new: Status,
        context: Context,
        *,
        unless: frozenset[Status] = frozenset(),
    ) -> tuple[SubscriberRecord, bool]:
        """Move a subscriber to `new` unless their status (read under the row lock) is in
        `unless`; returns (record, whether anything changed)."""
        with self.engine.begin() as connection:
            changed = change_status_in(connection, subscriber_id, new, context, unless=unless)
        record = self.get_by_id(subscriber_id)
        if record is None:
            raise NotFound(f"no subscriber #{subscriber_id}")
        return record, changed

    def unsubscribe(self, subscriber_id: int, context: Context) -> tuple[SubscriberRecord, bool]:
        """Idempotent; bounced and complained stay as they are (already suppressed)."""
        return self.change_status(subscriber_id, Status.UNSUBSCRIBED, context, unless=SUPPRESSED)

    def resubscribe(self, subscriber_id: int, reason: str, context: Context):  # type: ignore[no-untyped-def]
        """Back to active, only with a reason recorded in the consent log."""
        if not reason.strip():
            raise InputError("a resubscription needs a reason for the consent record")
        detail = f"{context.detail}: {reason.strip()}" if context.detail else reason.strip()
        return self.change_status(
            subscriber_id,
            Status.ACTIVE,
            Context(context.source, detail, context.ip, context.user_agent),
        )

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        topics: Sequence[str] | None = None,
        paused_until: datetime | None = None,
        clear_pause: bool = False,
        context: Context,
    ) -> SubscriberRecord:
        values: dict[str, Any] = {}
        if topics is not None:
            values["topics"] = checked_topics(topics)
        if paused_until is not None or clear_pause:
            values["paused_until"] = paused_until
        if values:
            at = now()
            with self.engine.begin() as connection:
                connection.execute(
                    update(subscribers).where(subscribers.c.id == subscriber_id).values(**values)
                )
                detail = ", ".join(
                    f"{k}={v.isoformat() if isinstance(v, datetime) else v}"
                    for k, v in values.items()
                )
                record_event(
                    connection,
                    subscriber_id,
                    "preferences",
                    Context(context.source, detail, context.ip, context.user_agent),
                    None,
                    None,
                    at,
                )
        record = self.get_by_id(subscriber_id)
        if record is None:
            raise NotFound(f"no subscriber #{subscriber_id}")
        return record

    def note(self, subscriber_id: int, kind: str, context: Context) -> None:
        """An event in the consent log that changes no status (a request, for instance)."""
        with self.engine.begin() as connection:
            record_event(connection, subscriber_id, kind, context, None, None, now())

    def claim_confirmation(
        self, subscriber_id: int, *, min_interval: timedelta, max_sends: int
    ) -> bool:
        """Atomically take the right to send one more confirmation message (resend limits:
        at most `max_sends` a day, none closer together than `min_interval`)."""
        at = now()
        with self.engine.begin() as connection:
            connection.execute(  # a day after the last one, the count starts again
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.confirm_sent_at <= at - timedelta(days=1),
                )
                .values(confirm_sent_count=0)
            )
            result = connection.execute(
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.confirm_sent_count < max_sends,
                    or_(
                        subscribers.c.confirm_sent_at.is_(None),
                        subscribers.c.confirm_sent_at <= at - min_interval,
                    ),
                )
                .values(confirm_sent_at=at, confirm_sent_count=subscribers.c.confirm_sent_count + 1)
            )
            return result.rowcount == 1

    def erase(self, email: str, context: Context) -> SubscriberRecord:
        """GDPR erasure: personal data goes; a salted hash stays so the address is suppressed."""
        address = parse_address(email)
        at = now()
        with self.engine.begin() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.email_key == address.key).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no subscriber {email!r}")
            old = Status(row.status)
            new = old if old in SUPPRESSED else Status.UNSUBSCRIBED
            connection.execute(
                update(subscribers)
                .where(subscribers.c.id == row.id)
                .values(
                    email=None,
                    email_key=None,
                    erased_hash=erased_hash(address.key, erasure_salt(connection)),
                    name=None,
                    topics=[],
                    attributes={},
                    status=str(new),
                    erased_at=at,
                    unsubscribed_at=row.unsubscribed_at or at,
                )
            )
            clear_traces(connection, row.id, address.email)
            record_event(connection, row.id, "erased", context, old, new, at)
        clear_old_pages(self.engine)
        record = self.get_by_id(row.id)
        assert record is not None
        return record
