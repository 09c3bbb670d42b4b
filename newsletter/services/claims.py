"""Working on a send: the worker registry, claiming batches of deliveries, handing them
over and recording their outcomes. What dead workers held is taken over by
services/recovery.py, called from `WorkQueue.recover`.

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
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.subscriber import Status
from newsletter.infra import journal
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import deliveries, sends, subscribers, workers
from newsletter.infra.redaction import redact
from newsletter.services.recovery import LEASE, take_over

HOST = socket.gethostname()
_batch_numbers = itertools.count(1)


class Claimed(NamedTuple):  # one per recipient: cheaper to make than a frozen dataclass
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


class Verdict(NamedTuple):
    """What became of one delivery, for `record`."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    provider_message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class WorkQueue:
    def __init__(self, engine: Engine, journals: Path | None = None) -> None:
        self.engine = engine
        self.reader = reading(engine)
        self.journals = journals  # this machine's worker journals (see infra/journal.py)

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
        """Release the claims of workers that are gone (services/recovery.py). A journal
        that was used is forgotten only once the takeover is committed. Returns (requeued,
        uncertain)."""
        cutoff = now() - LEASE
        with self.engine.begin() as connection:
            done = take_over(connection, send_id, cutoff, HOST, self.journals)
        if self.journals is not None:
            for worker_id in done.replayed:
                journal.forget(self.journals, worker_id)
        return done.requeued, done.uncertain

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
            skip = skip_reason(at)
            rows = connection.execute(
                select(
                    deliveries.c.id,
                    person.id,
                    person.email,
                    person.name,
                    deliveries.c.attempts,
                    skip,
                )
                .join(subscribers, person.id == deliveries.c.subscriber_id)
                .where(*_in_batch(send_id, batch_id))
                .order_by(deliveries.c.id)
            ).all()
            claimed = [Claimed(*row[:5]) for row in rows if row[5] is None]
            skipped = [{"_id": row[0], "_error": row[5]} for row in rows if row[5] is not None]
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

    def blocked(self, send_id: int, worker_id: str) -> dict[int, str]:
        """Subscribers in this worker's claimed batches who may no longer be sent to (they
        unsubscribed, bounced, were erased or paused since the claim), with the reason."""
        at = now()
        reason = skip_reason(at)
        query = (
            select(deliveries.c.subscriber_id, reason)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(
                deliveries.c.send_id == send_id,
                deliveries.c.status == str(DeliveryStatus.CLAIMED),
                deliveries.c.claimed_by.startswith(f"{worker_id}/", autoescape=True),
                reason.is_not(None),
            )
        )
        with self.reader.connect() as connection:
            return {subscriber_id: why for subscriber_id, why in connection.execute(query)}

    def checkpoint(
        self, batch: Batch, verdicts: Sequence[Verdict], hand: Sequence[int] = ()
    ) -> bool:
        """In one transaction: write the outcomes so far, then mark the next deliveries
        handed over (from here on a crash makes them "uncertain"). Only rows still this
        batch's are touched, never a takeover's. False if some of `hand` were taken over:
        then send none of them."""
        ours = {"_send": batch.send_id, "_batch": batch.id}
        with self.engine.begin() as connection:
            if verdicts:
                self._record(connection, batch, verdicts, ours)
            if not hand:
                return True
            if len(hand) < len(batch.claims):
                handed = connection.execute(_HAND_SOME, {**ours, "_ids": hand, "_at": now()})
            else:
                handed = connection.execute(_HAND_ALL, {**ours, "_at": now()})
            return handed.rowcount == len(hand)

    def record(self, batch: Batch, verdicts: Sequence[Verdict]) -> None:
        self.checkpoint(batch, verdicts)

    def _record(
        self,
        connection: Connection,
        batch: Batch,
        verdicts: Sequence[Verdict],
        ours: dict[str, Any],
    ) -> None:
        """Write each delivery's outcome. When most verdicts of a whole batch are alike (a
        provider accepted the request) they are written with one statement over the batch;
        the rest row by row through the primary key. The statements are built once (module
        level): a send records a million outcomes, and building them was most of the cost."""
        at = now()
        groups: dict[tuple[Any, ...], list[int]] = {}
        for v in verdicts:
            key = (v.status, v.attempts, v.provider_message_id, v.error, v.next_attempt_at)
            groups.setdefault(key, []).append(v.delivery_id)
        largest = max(groups, key=lambda key: len(groups[key]))
        whole = len(groups[largest]) > 1 and len(verdicts) == len(batch.claims)
        # A retry is only wanted while the send is not cancelled: ask only when it matters.
        cancelled = any(v.status == DeliveryStatus.QUEUED for v in verdicts) and (
            connection.execute(_SEND_STATUS, ours).scalar() == str(SendStatus.CANCELLED)
        )
        rows = [
            {**ours, "_id": delivery_id, **_outcome_values(key, at, cancelled)}
            for key, ids in groups.items()
            if not (whole and key == largest)
            for delivery_id in ids
        ]
        if rows:
            connection.execute(_RECORD_ROW, rows)
        if whole:  # after the others: what is still claimed by the batch is this group
            connection.execute(_RECORD_BATCH, {**ours, **_outcome_values(largest, at, cancelled)})

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


def skip_reason(at: datetime) -> Any:
    """Why a subscriber may no longer be sent to, judged in SQL (NULL: go ahead): no
    timestamps to parse back, no per-row Python for the usual case."""
    person = subscribers.c
    return case(
        (
            or_(person.erased_at.is_not(None), person.email.is_(None)),
            literal("subscriber erased"),
        ),
        (
            person.status != str(Status.ACTIVE),
            literal("subscriber ") + person.status + literal(" before their turn"),
        ),
        (
            and_(person.paused_until.is_not(None), person.paused_until > at),
            literal("subscriber paused"),
        ),
    )


_OUTCOME_COLUMNS = (
    "status",
    "attempts",
    "provider_message_id",
    "last_error",
    "next_attempt_at",
    "finished_at",
    "claimed_by",
    "handed_at",
)


def _outcome_values(key: tuple[Any, ...], at: datetime, cancelled: bool) -> dict[str, Any]:
    status, attempts, provider, error, retry_at = key
    if cancelled and status == DeliveryStatus.QUEUED:
        # A retry is no longer wanted: the send was cancelled meanwhile.
        status, error, retry_at = DeliveryStatus.SKIPPED, "send cancelled", None
    values = (
        str(status),
        attempts,
        provider,
        None if error is None else redact(error),
        retry_at,
        None if status == DeliveryStatus.QUEUED else at,
        None,
        None,
    )
    return {f"v_{name}": value for name, value in zip(_OUTCOME_COLUMNS, values, strict=True)}


def _in_batch(send_id: int, batch_id: str) -> list[Any]:
    return [
        deliveries.c.send_id == send_id,
        deliveries.c.status == str(DeliveryStatus.CLAIMED),
        deliveries.c.claimed_by == batch_id,
    ]


# Statements of the hot path, built once; parameters `_send` and `_batch` name the batch.
_OURS = (
    deliveries.c.send_id == bindparam("_send"),
    deliveries.c.status == str(DeliveryStatus.CLAIMED),
    deliveries.c.claimed_by == bindparam("_batch"),
)
_SET_OUTCOME = {name: bindparam(f"v_{name}") for name in _OUTCOME_COLUMNS}
_RECORD_ROW = (
    update(deliveries).where(deliveries.c.id == bindparam("_id"), *_OURS).values(_SET_OUTCOME)
)
_RECORD_BATCH = update(deliveries).where(*_OURS).values(_SET_OUTCOME)
_HAND_SOME = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("_ids", expanding=True)), *_OURS)
    .values(handed_at=bindparam("_at"))
)
_HAND_ALL = update(deliveries).where(*_OURS).values(handed_at=bindparam("_at"))
_SEND_STATUS = select(sends.c.status).where(sends.c.id == bindparam("_send"))
