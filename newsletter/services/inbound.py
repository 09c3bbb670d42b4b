"""Mail that comes back (`newsletter inbound`, `POST /webhooks/inbound`): bounces,
complaints and mailto unsubscribes applied to the list, each mail once (by its
Message-ID). A transient failure (4.x.x) changes nothing by itself; the address is
`bounced` when its last `soft_bounce_limit` sends each came back that way."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select

from newsletter.domain.inbound import Inbound, classify
from newsletter.domain.subscriber import NEVER_OVERRIDES, Source, Status
from newsletter.domain.tokens import InvalidToken, Purpose, Signer
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import deliveries, provider_events, subscribers
from newsletter.services.consent_log import change_status_in
from newsletter.services.provider_events import event_row
from newsletter.services.subscribers import Context

# What each kind of returned mail does, and where the change says it came from.
EFFECTS = {
    "bounce": (Status.BOUNCED, Source.PROVIDER),
    "complaint": (Status.COMPLAINED, Source.PROVIDER),
    "unsubscribe": (Status.UNSUBSCRIBED, Source.MAILTO),
}
SOFT = "soft-bounce"
# A send that any of these reached was not a failure, whatever delays were reported.
REACHED = ("delivered", "open", "click")


@dataclass(frozen=True)
class Applied:
    kind: str
    subscriber_id: int | None
    changed: bool
    duplicate: bool
    detail: str | None


def apply(engine: Engine, signer: Signer, raw: bytes, soft_bounce_limit: int = 3) -> Applied:
    found = classify(raw)
    event_id = "mail:" + (found.message_id or sha256(raw).hexdigest())[:90]
    with engine.begin() as connection:
        seen = connection.execute(
            select(provider_events.c.id).where(provider_events.c.event_id == event_id)
        ).first()
        if seen is not None:
            return Applied(found.kind, None, False, True, found.detail)
        subscriber_id, send_id = _who(connection, signer, found)
        recent: list[int] = []
        if subscriber_id is not None and found.kind == SOFT:
            recent = _recent_sends(connection, subscriber_id, soft_bounce_limit)
            if send_id is None and recent:
                send_id = recent[0]  # a DSN follows its send closely
        email = found.addresses[0] if found.addresses else None
        row = event_row(
            "mail",
            event_id,
            found.kind,
            now(),
            email=email,
            subscriber_id=subscriber_id,
            send_id=send_id,
            detail=found.detail,
        )
        connection.execute(insert(provider_events), [row])
        changed = False
        effect = EFFECTS.get(found.kind)
        detail = f"inbound {found.kind} {event_id}"
        if effect is None and subscriber_id is not None and found.kind == SOFT:
            in_a_row = _soft_in_a_row(connection, subscriber_id, recent)
            if in_a_row >= soft_bounce_limit:
                effect = EFFECTS["bounce"]
                detail = f"inbound {in_a_row} soft bounces in a row, last {event_id}"
        if effect is not None and subscriber_id is not None:
            status, source = effect
            context = Context(source, detail)
            never = NEVER_OVERRIDES[status]
            changed = change_status_in(connection, subscriber_id, status, context, unless=never)
    return Applied(found.kind, subscriber_id, changed, False, found.detail)


def _who(connection: Connection, signer: Signer, found: Inbound) -> tuple[int | None, int | None]:
    """The subscriber and send a mail is about: a signed token first, then our Message-ID
    in the returned copy, then the failed address."""
    if found.kind == "unsubscribe":  # only a valid token counts: anyone can write a mail
        try:
            token = signer.verify(found.token or "", Purpose.UNSUBSCRIBE)
        except InvalidToken:
            return None, None
        return token.subscriber_id, token.send_id
    if found.token:  # VERP: the bounce came to the address that names its delivery
        try:
            token = signer.verify(found.token, Purpose.BOUNCE)
            return token.subscriber_id, token.send_id
        except InvalidToken:
            pass
    for send, subscriber in found.keys:
        return subscriber, send
    for address in found.addresses:
        row = connection.execute(
            select(subscribers.c.id).where(subscribers.c.email_key == address.lower())
        ).first()
        if row is not None:
            return int(row.id), None
    return None, None


def _recent_sends(connection: Connection, subscriber_id: int, limit: int) -> list[int]:
    """The subscriber's latest sends that handed them a message, newest first."""
    return list(
        connection.execute(
            select(deliveries.c.send_id)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent")
            .order_by(deliveries.c.send_id.desc())
            .limit(limit)
        ).scalars()
    )


def _soft_in_a_row(connection: Connection, subscriber_id: int, recent: list[int]) -> int:
    """How many of the subscriber's latest sends (`recent`, newest first) came back with a
    transient failure and were not reached after all, counted from the newest back to the
    first that did not fail."""
    events = provider_events.c
    by_kind = connection.execute(
        select(events.kind, events.send_id)
        .where(
            events.subscriber_id == subscriber_id,
            events.send_id.in_(recent),
            events.kind.in_((SOFT, *REACHED)),
        )
        .distinct()
    ).all()
    soft = {send for kind, send in by_kind if kind == SOFT}
    reached = {send for kind, send in by_kind if kind != SOFT}
    count = 0
    for send in recent:
        if send not in soft or send in reached:
            break
        count += 1
    return count


def messages_in(path: Path) -> Iterator[bytes]:
    for message in mailbox.mbox(str(path), create=False):
        yield message.as_bytes()
