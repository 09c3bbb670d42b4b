"""Mail that comes back (`newsletter inbound`): bounces, complaints and mailto unsubscribes
applied to the list, each mail once (by its Message-ID)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from sqlalchemy import Engine, insert, select

from newsletter.domain.inbound import Inbound, classify
from newsletter.domain.subscriber import SUPPRESSED, Source, Status
from newsletter.domain.tokens import InvalidToken, Purpose, Signer
from newsletter.infra.db.schema import provider_events, subscribers
from newsletter.services.feedback import COMPLAINED_ONLY, HARD
from newsletter.services.subscribers import Context, change_status_in, now

EFFECTS = {
    "bounce": (Status.BOUNCED, HARD, Source.PROVIDER),
    "complaint": (Status.COMPLAINED, COMPLAINED_ONLY, Source.PROVIDER),
    "unsubscribe": (Status.UNSUBSCRIBED, SUPPRESSED, Source.MAILTO),
}


@dataclass(frozen=True)
class Applied:
    kind: str
    subscriber_id: int | None
    changed: bool
    duplicate: bool
    detail: str | None


def apply(engine: Engine, signer: Signer, raw: bytes) -> Applied:
    found = classify(raw)
    event_id = "mail:" + (found.message_id or sha256(raw).hexdigest())[:90]
    with engine.begin() as connection:
        seen = connection.execute(
            select(provider_events.c.id).where(provider_events.c.event_id == event_id)
        ).first()
        if seen is not None:
            return Applied(found.kind, None, False, True, found.detail)
        subscriber_id = _who(connection, signer, found)
        connection.execute(
            insert(provider_events).values(
                provider="mail",
                event_id=event_id,
                kind=found.kind,
                email=found.addresses[0][:320] if found.addresses else None,
                subscriber_id=subscriber_id,
                received_at=now(),
                detail=found.detail,
            )
        )
        changed = False
        if found.kind in EFFECTS and subscriber_id is not None:
            status, unless, source = EFFECTS[found.kind]
            context = Context(source, f"inbound {found.kind} {event_id}")
            changed = change_status_in(connection, subscriber_id, status, context, unless=unless)
    return Applied(found.kind, subscriber_id, changed, False, found.detail)


def _who(connection: object, signer: Signer, found: Inbound) -> int | None:
    if found.kind == "unsubscribe":  # only a valid token counts: anyone can write a mail
        try:
            return signer.verify(found.token or "", Purpose.UNSUBSCRIBE).subscriber_id
        except InvalidToken:
            return None
    if found.token:  # VERP: the bounce came to the address that names its delivery
        try:
            return signer.verify(found.token, Purpose.BOUNCE).subscriber_id
        except InvalidToken:
            pass
    for key in found.keys:
        return int(key.removeprefix("sub-"))
    for address in found.addresses:
        row = connection.execute(  # type: ignore[attr-defined]
            select(subscribers.c.id).where(subscribers.c.email_key == address.lower())
        ).first()
        if row is not None:
            return int(row.id)
    return None


def messages_in(path: Path) -> Iterator[bytes]:
    for message in mailbox.mbox(str(path), create=False):
        yield message.as_bytes()
