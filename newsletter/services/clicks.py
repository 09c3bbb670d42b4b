"""Following a tracked link: check both signatures, record the click, name the target.

A click is stored as a provider event of our own (provider `own`, kind `click`), so the
statistics count it like SendGrid's. Test sends carry subscriber 0: their links lead on
without being counted."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from sqlalchemy import Engine, insert

from newsletter.domain.tokens import InvalidToken, Purpose, Signer
from newsletter.infra.db.clock import now
from newsletter.infra.db.schema import provider_events
from newsletter.services.provider_events import event_row


class UnknownLink(Exception):
    """Forged token, tampered target or a tag of another target: all look alike (404)."""


@dataclass(frozen=True)
class Click:
    target: str
    recorded: bool


def follow(
    engine: Engine, signer: Signer, token: str, tag: str, target: str, *, record: bool = True
) -> Click:
    if not target or not signer.verify_link(target, tag):
        raise UnknownLink
    try:
        who = signer.verify(token, Purpose.CLICK)
    except InvalidToken:
        raise UnknownLink from None
    if not record or who.subscriber_id == 0:
        return Click(target, False)
    at = now()
    with engine.begin() as connection:
        row = event_row(
            "own",
            f"click:{uuid4().hex}",
            "click",
            at,
            subscriber_id=who.subscriber_id,
            send_id=who.send_id,
            occurred_at=at,
            detail=target,
        )
        connection.execute(insert(provider_events), [row])
    return Click(target, True)
