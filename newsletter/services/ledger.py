"""The send ledger: one row per send, one per (send, recipient), and who is working on it.

Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of workers on any
machines share a send; on SQLite, BEGIN IMMEDIATE serializes the claims of one machine.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.personalize import RenderedIssue
from newsletter.domain.subscriber import Status
from newsletter.errors import InputError
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import deliveries, sends, subscribers, workers
from newsletter.services.subscribers import follows_topic, now, utc

LEASE = timedelta(seconds=60)  # a worker silent for this long is taken for dead
HOST = socket.gethostname()
_batch_numbers = itertools.count(1)


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


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str | None
    attempts: int


@dataclass(frozen=True)
class Batch:
    id: str  # worker id / batch number: written into `claimed_by`
    send_id: int
    claims: list[Claimed]

    def __bool__(self) -> bool:
        return bool(self.claims)


@dataclass(frozen=True)
class Verdict:
    """What became of one delivery, for `record`."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    provider_message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = reading(engine)

    # -- sends -----------------------------------------------------------------------------

    def create_send(
        self, rendered: RenderedIssue, transport: str, topic: str | None = None
    ) -> SendRecord:
        """Freeze the render and snapshot the audience (active, not paused) in one go."""
        at = now()
        with self.engine.begin() as connection:
            send_id = connection.execute(
                insert(sends)
                .values(
                    issue_slug=rendered.slug,
                    content_hash=rendered.content_hash,
                    subject=rendered.subject,
                    preheader=rendered.preheader,
                    html=rendered.html,
                    text=rendered.text,
                    transport=transport,
                    topic=topic,
                    status=str(SendStatus.QUEUED),
                    created_at=at,
                )
                .returning(sends.c.id)
            ).scalar_one()
            audience = select(
                bindparam("send_id", send_id, type_=deliveries.c.send_id.type),
                subscribers.c.id,
                bindparam("queued", str(DeliveryStatus.QUEUED)),
            ).where(*audience_filter(at, topic))
            connection.execute(
                insert(deliveries).from_select(["send_id", "subscriber_id", "status"], audience)
            )
            total = connection.execute(
                select(func.count()).where(deliveries.c.send_id == send_id)
            ).scalar_one()
            connection.execute(update(sends).where(sends.c.id == send_id).values(total=total))
        return self.get(send_id)

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
        values: dict[str, Any] = {"status": str(status), "status_reason": reason}
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

    # -- workers ---------------------------------------------------------------------------

    def register_worker(self, send_id: int) -> str:
        worker_id = uuid.uuid4().hex[:16]  # host and pid have their own columns
        at = now()
        with self.engine.begin() as connection:
            connection.execute(
                insert(workers).values(
                    id=worker_id,
                    send_id=send_id,
                    host=HOST,
                    pid=os.getpid(),
                    started_at=at,
                    heartbeat_at=at,
                )
            )
        return worker_id

    def heartbeat(self, worker_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now())
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(workers).where(workers.c.id == worker_id))

    def recover(self, send_id: int) -> tuple[int, int]:
        """Release the claims of workers that are gone (dead, silent past the lease, or no
        longer registered at all): never handed over -> queued again; handed over with no
        outcome -> uncertain. Returns (requeued, uncertain)."""
        cutoff = now() - LEASE
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(workers).where(workers.c.send_id == send_id).with_for_update()
            ).all()
            dead = {row.id for row in rows if _is_dead(row, cutoff)}
            live = {row.id for row in rows} - dead
            batches = connection.execute(
                select(deliveries.c.claimed_by, func.max(deliveries.c.claimed_at))
                .where(
                    deliveries.c.send_id == send_id,
                    deliveries.c.status == str(DeliveryStatus.CLAIMED),
                )
                .group_by(deliveries.c.claimed_by)
            ).all()
            # A batch whose worker is not registered at all (it stopped on an error) is
            # taken over only once it is older than the lease: a worker registering right
            # now may not be in our snapshot yet.
            orphaned = [
                batch
                for batch, claimed_at in batches
                if batch
                and batch.rsplit("/", 1)[0] not in live
                and (batch.rsplit("/", 1)[0] in dead or (utc(claimed_at) or cutoff) < cutoff)
            ]
            if dead:
                connection.execute(delete(workers).where(workers.c.id.in_(dead)))
            if not orphaned:
                return 0, 0
            claimed = and_(
                deliveries.c.send_id == send_id,
                deliveries.c.status == str(DeliveryStatus.CLAIMED),
                deliveries.c.claimed_by.in_(orphaned),
            )
            cancelled = connection.execute(
                select(sends.c.status).where(sends.c.id == send_id)
            ).scalar() == str(SendStatus.CANCELLED)
            back = (
                {
                    "status": str(DeliveryStatus.SKIPPED),
                    "last_error": "send cancelled",
                    "finished_at": now(),
                }
                if cancelled
                else {"status": str(DeliveryStatus.QUEUED)}
            )
            requeued = connection.execute(
                update(deliveries)
                .where(claimed, deliveries.c.handed_at.is_(None))
                .values(claimed_by=None, claimed_at=None, **back)
            ).rowcount
            uncertain = connection.execute(
                update(deliveries)
                .where(claimed, deliveries.c.handed_at.is_not(None))
                .values(
                    status=str(DeliveryStatus.UNCERTAIN),
                    finished_at=now(),
                    last_error="the sending worker stopped after handing it over",
                )
            ).rowcount
        return requeued, uncertain

    # -- the work --------------------------------------------------------------------------

    def claim(self, send_id: int, worker_id: str, limit: int) -> Batch:
        """Take up to `limit` due deliveries as one batch, and skip at once those whose
        subscriber is no longer active (an unsubscribe that lands mid-send is honoured).

        Rows are marked with the batch's own id, so handing over and recording touch them
        through the (send, status) index instead of long lists of ids.
        """
        at = now()
        batch_id = f"{worker_id}/{next(_batch_numbers)}"
        due = (
            select(deliveries.c.id)
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == str(DeliveryStatus.QUEUED),
                or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= at),
            )
            .order_by(deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(
                    status=str(DeliveryStatus.CLAIMED),
                    claimed_by=batch_id,
                    claimed_at=at,
                    handed_at=None,
                )
            ).rowcount
            if not taken:
                return Batch(batch_id, send_id, [])
            person = subscribers.c
            # Judged in SQL: no timestamps to parse back for a thousand rows.
            paused = and_(person.paused_until.is_not(None), person.paused_until > at)
            rows = connection.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.attempts,
                    person.id,
                    person.email,
                    person.name,
                    person.status,
                    person.erased_at.is_not(None).label("erased"),
                    paused.label("paused"),
                )
                .join(subscribers, person.id == deliveries.c.subscriber_id)
                .where(*_in_batch(send_id, batch_id))
                .order_by(deliveries.c.id)
            ).all()
            claimed: list[Claimed] = []
            skipped: list[dict[str, Any]] = []
            for row in rows:
                reason = _skip_reason(row)
                if reason:
                    skipped.append({"_id": row[0], "_error": reason})
                else:
                    claimed.append(Claimed(row[0], row.id, row.email, row.name, row.attempts))
            if skipped:
                connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id == bindparam("_id"))
                    .values(
                        status=str(DeliveryStatus.SKIPPED),
                        last_error=bindparam("_error"),
                        finished_at=at,
                        claimed_by=None,
                    ),
                    skipped,
                )
        return Batch(batch_id, send_id, claimed)

    def mark_handed(self, batch: Batch) -> bool:
        """Committed before the transport call: from here on a crash means "uncertain".
        False if some rows are no longer this batch's (taken over): then send nothing."""
        with self.engine.begin() as connection:
            return connection.execute(
                update(deliveries)
                .where(*_in_batch(batch.send_id, batch.id))
                .values(handed_at=now())
            ).rowcount == len(batch.claims)

    def release(self, batch: Batch) -> None:
        """Give a batch back untouched (the transport refused it all, unsent)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(deliveries)
                .where(*_in_batch(batch.send_id, batch.id))
                .values(status=str(DeliveryStatus.QUEUED), claimed_by=None, handed_at=None)
            )

    def record(self, batch: Batch, verdicts: Sequence[Verdict]) -> None:
        """Write each delivery's outcome, only where the row is still this batch's (never
        over a takeover). When most verdicts are alike (a provider accepted the request)
        they are written with one statement over the batch; the rest row by row."""
        if not verdicts:
            return
        at = now()
        groups: dict[tuple[Any, ...], list[int]] = {}
        for v in verdicts:
            key = (v.status, v.attempts, v.provider_message_id, v.error, v.next_attempt_at)
            groups.setdefault(key, []).append(v.delivery_id)
        largest = max(groups, key=lambda key: len(groups[key]))
        whole = len(groups[largest]) > 1 and len(verdicts) == len(batch.claims)
        with self.engine.begin() as connection:
            cancelled = connection.execute(
                select(sends.c.status).where(sends.c.id == batch.send_id)
            ).scalar() == str(SendStatus.CANCELLED)
            rows = [
                {"_id": delivery_id, **_outcome_values(key, at, cancelled)}
                for key, ids in groups.items()
                if not (whole and key == largest)
                for delivery_id in ids
            ]
            if rows:
                connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id == bindparam("_id"), *_in_batch(batch.send_id, batch.id))
                    .values({name: bindparam(name) for name in rows[0] if name != "_id"}),
                    rows,
                )
            if whole:  # after the others: what is still claimed by the batch is this group
                connection.execute(
                    update(deliveries)
                    .where(*_in_batch(batch.send_id, batch.id))
                    .values(**_outcome_values(largest, at, cancelled))
                )

    def pending(self, send_id: int) -> tuple[int, int, datetime | None]:
        """(queued, claimed, the soonest next attempt of queued rows)."""
        with self.reader.connect() as connection:
            counts = dict(
                connection.execute(
                    select(deliveries.c.status, func.count())
                    .where(
                        deliveries.c.send_id == send_id,
                        deliveries.c.status.in_(
                            [str(DeliveryStatus.QUEUED), str(DeliveryStatus.CLAIMED)]
                        ),
                    )
                    .group_by(deliveries.c.status)
                ).all()
            )
            soonest = connection.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.send_id == send_id,
                    deliveries.c.status == str(DeliveryStatus.QUEUED),
                )
            ).scalar()
        return (
            counts.get(str(DeliveryStatus.QUEUED), 0),
            counts.get(str(DeliveryStatus.CLAIMED), 0),
            utc(soonest),
        )


def _outcome_values(key: tuple[Any, ...], at: datetime, cancelled: bool) -> dict[str, Any]:
    status, attempts, provider, error, retry_at = key
    if cancelled and status == DeliveryStatus.QUEUED:
        # A retry is no longer wanted: the send was cancelled meanwhile.
        status, error, retry_at = DeliveryStatus.SKIPPED, "send cancelled", None
    return {
        "status": str(status),
        "attempts": attempts,
        "provider_message_id": provider,
        "last_error": error,
        "next_attempt_at": retry_at,
        "finished_at": None if status == DeliveryStatus.QUEUED else at,
        "claimed_by": None,
        "handed_at": None,
    }


def _in_batch(send_id: int, batch_id: str) -> list[Any]:
    return [
        deliveries.c.send_id == send_id,
        deliveries.c.status == str(DeliveryStatus.CLAIMED),
        deliveries.c.claimed_by == batch_id,
    ]


def audience_filter(at: datetime, topic: str | None, *, with_paused: bool = False) -> list[Any]:
    """Who a send goes to: active, not erased, not pausing (unless asked), following `topic`."""
    conditions: list[Any] = [
        subscribers.c.status == str(Status.ACTIVE),
        subscribers.c.erased_at.is_(None),
    ]
    if not with_paused:
        conditions.append(
            or_(subscribers.c.paused_until.is_(None), subscribers.c.paused_until <= at)
        )
    if topic:
        conditions.append(follows_topic(topic))
    return conditions


def _skip_reason(row: Any) -> str | None:
    if row.erased or row.email is None:
        return "subscriber erased"
    if row.status != str(Status.ACTIVE):
        return f"subscriber {row.status} before their turn"
    if row.paused:
        return "subscriber paused"
    return None


def _is_dead(row: Any, cutoff: datetime) -> bool:
    if row.host == HOST and not _pid_alive(row.pid):
        return True
    heartbeat = utc(row.heartbeat_at)
    return heartbeat is not None and heartbeat < cutoff


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
