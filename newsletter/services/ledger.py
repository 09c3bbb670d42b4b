"""The send ledger: one row per send (its frozen render, status and counts), and the
per-recipient deliveries it snapshots. Working on the deliveries is `claims.WorkQueue`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.personalize import RenderedIssue
from newsletter.errors import InputError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import deliveries, send_snippets, sends, subscribers
from newsletter.infra.redaction import redact
from newsletter.services.audience import Audience


def reached_readers() -> ColumnElement[bool]:
    """A send some reader got: at least one delivery sent, whatever became of the send.

    What the archive publishes: every "View online" link in a delivered message must work,
    also when the send was cancelled halfway."""
    return exists().where(
        deliveries.c.send_id == sends.c.id, deliveries.c.status == str(DeliveryStatus.SENT)
    )


def holds_its_issue() -> ColumnElement[bool]:
    """A send that makes its issue "sent": under way or done, or cancelled after it reached
    readers. Such an issue is not sent again without --again, the daemon does not pick it
    as the next one, and its snippets count as used; a send cancelled before anyone got it
    leaves the issue as if it was never sent."""
    return or_(sends.c.status != str(SendStatus.CANCELLED), reached_readers())


@dataclass(frozen=True)
class SendRecord:
    id: int
    issue_slug: str
    content_hash: str
    subject: str
    transport: str
    topic: str | None
    status: SendStatus
    status_reason: str | None
    total: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": str(self.status)}


class AlreadySent(InputError):
    """An issue goes out once unless the editor says `--again`."""

    def __init__(self, earlier: SendRecord) -> None:
        self.earlier = earlier
        super().__init__(
            f"{earlier.issue_slug} was already sent: send #{earlier.id} on "
            f"{earlier.created_at:%Y-%m-%d %H:%M} UTC to {earlier.total} recipient(s) "
            f"({earlier.status}); add --again to send it once more"
        )


@dataclass(frozen=True)
class Retrying:
    """Deliveries waiting for another attempt, for `sends show`."""

    count: int
    next_at: datetime | None
    last_error: str | None


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = reading(engine)

    # -- sends -----------------------------------------------------------------------------

    def create_send(
        self,
        rendered: RenderedIssue,
        transport: str,
        audience: Audience | None = None,
        *,
        again: bool = False,
        snippets: Sequence[tuple[str, str]] = (),
    ) -> SendRecord:
        """Freeze the render and snapshot the audience in one transaction; refuse an issue
        that already has a send holding it (holds_its_issue) unless `again`. `snippets`: the (id,
        content hash) of each snippet the render carries, in order (reuse tracking)."""
        with self.engine.begin() as connection:
            send_id = self.insert_send(
                connection, rendered, transport, audience, again=again, snippets=snippets
            )
        return self.get(send_id)

    def insert_send(
        self,
        connection: Connection,
        rendered: RenderedIssue,
        transport: str,
        audience: Audience | None = None,
        *,
        again: bool = False,
        snippets: Sequence[tuple[str, str]] = (),
    ) -> int:
        """`create_send` inside a caller's transaction (a schedule firing guards its own
        row in the same one)."""
        audience = audience or Audience()
        at = now()
        lock_issue(connection, rendered.slug)
        earlier = self._earlier(connection, rendered.slug)
        if earlier is not None and not again:
            raise AlreadySent(earlier)
        send_id: int = connection.execute(
            insert(sends)
            .values(
                issue_slug=rendered.slug,
                content_hash=rendered.content_hash,
                subject=rendered.subject,
                preheader=rendered.preheader,
                html=rendered.html,
                text=rendered.text,
                transport=transport,
                topic=audience.topic,
                status=str(SendStatus.QUEUED),
                created_at=at,
            )
            .returning(sends.c.id)
        ).scalar_one()
        snapshot = select(
            bindparam("send_id", send_id, type_=deliveries.c.send_id.type),
            subscribers.c.id,
            bindparam("queued", str(DeliveryStatus.QUEUED)),
        ).where(*audience.conditions(at))
        connection.execute(
            insert(deliveries).from_select(["send_id", "subscriber_id", "status"], snapshot)
        )
        total = connection.execute(
            select(func.count()).where(deliveries.c.send_id == send_id)
        ).scalar_one()
        connection.execute(update(sends).where(sends.c.id == send_id).values(total=total))
        carried = _carried_rows(send_id, snippets)
        if carried:
            connection.execute(insert(send_snippets), carried)
        return send_id

    def earlier_send(self, slug: str) -> SendRecord | None:
        """The latest send of this issue that holds it (see holds_its_issue), if any."""
        with self.reader.connect() as connection:
            return self._earlier(connection, slug)

    def _earlier(self, connection: Connection, slug: str) -> SendRecord | None:
        row = connection.execute(
            select(sends)
            .where(sends.c.issue_slug == slug, holds_its_issue())
            .order_by(sends.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _record(row, {})

    def get(self, send_id: int) -> SendRecord:
        with self.reader.connect() as connection:
            row = connection.execute(select(sends).where(sends.c.id == send_id)).first()
            if row is None:
                raise InputError(f"no send #{send_id}")
            counts = dict(
                connection.execute(
                    select(deliveries.c.status, func.count())
                    .where(deliveries.c.send_id == send_id)
                    .group_by(deliveries.c.status)
                ).all()
            )
        return _record(row, counts)

    def rendered(self, send_id: int) -> RenderedIssue:
        """The frozen render, checked against the hash stored with the send."""
        with self.reader.connect() as connection:
            row = connection.execute(select(sends).where(sends.c.id == send_id)).first()
        if row is None:
            raise InputError(f"no send #{send_id}")
        rendered = RenderedIssue.create(
            row.issue_slug, row.subject, row.preheader, row.html, row.text
        )
        if rendered.content_hash != row.content_hash:
            raise InputError(f"send #{send_id}: stored content does not match its hash")
        return rendered

    def list(self, limit: int = 50) -> list[SendRecord]:
        with self.reader.connect() as connection:
            rows = connection.execute(select(sends).order_by(sends.c.id.desc()).limit(limit)).all()
            ids = [row.id for row in rows]
            counts: dict[int, dict[str, int]] = {i: {} for i in ids}
            for send_id, status, n in connection.execute(
                select(deliveries.c.send_id, deliveries.c.status, func.count())
                .where(deliveries.c.send_id.in_(ids))
                .group_by(deliveries.c.send_id, deliveries.c.status)
            ):
                counts[send_id][status] = n
        return [_record(row, counts[row.id]) for row in rows]

    def set_status(
        self,
        send_id: int,
        status: SendStatus,
        reason: str | None = None,
        *,
        only_from: Sequence[SendStatus] = (),
    ) -> bool:
        """Change a send's status (only from the given ones, when given); True if it changed."""
        values: dict[str, Any] = {
            "status": str(status),
            "status_reason": None if reason is None else redact(reason),
        }
        if status == SendStatus.SENDING:
            values["started_at"] = func.coalesce(sends.c.started_at, now())
        if status in (SendStatus.DONE, SendStatus.CANCELLED):
            values["finished_at"] = now()
        query = update(sends).where(sends.c.id == send_id)
        if only_from:
            query = query.where(sends.c.status.in_([str(s) for s in only_from]))
        with self.engine.begin() as connection:
            return connection.execute(query.values(**values)).rowcount == 1

    def status(self, send_id: int) -> SendStatus:
        with self.reader.connect() as connection:
            value = connection.execute(select(sends.c.status).where(sends.c.id == send_id))
            found = value.scalar()
        if found is None:
            raise InputError(f"no send #{send_id}")
        return SendStatus(found)

    def cancel(self, send_id: int) -> int:
        """Cancel: what is still queued ends as skipped; returns how many."""
        with self.engine.begin() as connection:
            connection.execute(
                update(sends)
                .where(sends.c.id == send_id)
                .values(
                    status=str(SendStatus.CANCELLED), finished_at=now(), status_reason="cancelled"
                )
            )
            return connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.send_id == send_id,
                    deliveries.c.status == str(DeliveryStatus.QUEUED),
                )
                .values(
                    status=str(DeliveryStatus.SKIPPED),
                    last_error="send cancelled",
                    finished_at=now(),
                )
            ).rowcount

    def resend_uncertain(self, send_id: int) -> int:
        """Queue the uncertain deliveries again and reopen the send if it was done."""
        with self.engine.begin() as connection:
            status = connection.execute(
                select(sends.c.status).where(sends.c.id == send_id).with_for_update()
            ).scalar()
            if status is None:
                raise InputError(f"no send #{send_id}")
            if status == SendStatus.CANCELLED:
                raise InputError(f"send #{send_id} was cancelled; nothing is resent")
            count = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.send_id == send_id,
                    deliveries.c.status == str(DeliveryStatus.UNCERTAIN),
                )
                .values(
                    status=str(DeliveryStatus.QUEUED),
                    finished_at=None,
                    handed_at=None,
                    claimed_by=None,
                    last_error="resent on request after uncertainty",
                )
            ).rowcount
            if count and status == SendStatus.DONE:
                connection.execute(
                    update(sends)
                    .where(sends.c.id == send_id)
                    .values(status=str(SendStatus.QUEUED), finished_at=None)
                )
            return count

    def retrying(self, send_id: int) -> Retrying:
        waiting = (
            deliveries.c.send_id == send_id,
            deliveries.c.status == str(DeliveryStatus.QUEUED),
            deliveries.c.next_attempt_at.is_not(None),
        )
        with self.reader.connect() as connection:
            count, next_at = connection.execute(
                select(func.count(), func.min(deliveries.c.next_attempt_at)).where(*waiting)
            ).one()
            error = connection.execute(
                select(deliveries.c.last_error)
                .where(*waiting)
                .order_by(deliveries.c.next_attempt_at.desc())
                .limit(1)
            ).scalar()
        return Retrying(count, utc(next_at), error)

    def deliveries_in(self, send_id: int, status: DeliveryStatus) -> list[tuple[int, str, str]]:
        """(subscriber id, email, last error) of the deliveries in a state."""
        query = (
            select(deliveries.c.subscriber_id, subscribers.c.email, deliveries.c.last_error)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.send_id == send_id, deliveries.c.status == str(status))
            .order_by(deliveries.c.id)
        )
        with self.reader.connect() as connection:
            return [(r[0], r[1] or "(erased)", r[2] or "") for r in connection.execute(query)]


def lock_issue(connection: Connection, slug: str) -> None:
    """Two editors sending one issue at once: the second waits, then sees the first's send.
    (SQLite's writers are serialized by BEGIN IMMEDIATE already.)"""
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"issue:{slug}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _carried_rows(send_id: int, snippets: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per snippet id, at its first position (a snippet shown twice, say as a
    teaser and in full, was still carried once)."""
    rows: dict[str, dict[str, Any]] = {}
    for snippet_id, content_hash in snippets:
        if snippet_id not in rows:
            rows[snippet_id] = {
                "send_id": send_id,
                "snippet_id": snippet_id,
                "content_hash": content_hash,
                "position": len(rows),
            }
    return list(rows.values())


def _record(row: Any, counts: dict[str, int]) -> SendRecord:
    return SendRecord(
        id=row.id,
        issue_slug=row.issue_slug,
        content_hash=row.content_hash,
        subject=row.subject,
        transport=row.transport,
        topic=row.topic,
        status=SendStatus(row.status),
        status_reason=row.status_reason,
        total=row.total,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
        counts={str(s): counts.get(str(s), 0) for s in DeliveryStatus},
    )
