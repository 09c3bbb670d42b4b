"""What the subscriber web app does: token-checked unsubscribe, preferences, double opt-in.

Every answer that could tell a stranger whether an address is on the list is the same
either way: an invalid token, an unknown subscriber and an erased one all read as None.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from newsletter.domain.list_headers import ListIdentity
from newsletter.domain.personalize import Recipient, delivery_key
from newsletter.domain.subscriber import SUPPRESSED, Status, SubscriberRecord
from newsletter.domain.tokens import InvalidToken, Purpose, Signer
from newsletter.errors import InputError
from newsletter.infra.db.clock import now
from newsletter.infra.setting_tables import WebSettings
from newsletter.infra.transports.base import Result, Transport
from newsletter.services.render import Renderer
from newsletter.services.subscribers import Context, SubscriberStore, checked_name, parse_address

CONFIRM_STREAM = "confirmations"

log = logging.getLogger("newsletter.consent")


@dataclass
class ConsentService:
    store: SubscriberStore
    signer: Signer
    identity: ListIdentity
    web: WebSettings
    renderer: Renderer
    transport: Transport

    def subscriber_for(self, token: str, purpose: Purpose) -> SubscriberRecord | None:
        max_age = timedelta(days=self.web.confirm_ttl_days) if purpose == Purpose.CONFIRM else None
        try:
            parsed = self.signer.verify(token, purpose, max_age=max_age)
        except InvalidToken:
            return None
        record = self.store.get_by_id(parsed.subscriber_id)
        if record is None or record.erased_at is not None:
            return None
        if (
            purpose == Purpose.CONFIRM
            and record.unsubscribed_at is not None
            and parsed.issued_at <= record.unsubscribed_at.replace(microsecond=0)
        ):
            return None  # a confirmation from before an unsubscribe cannot undo it
        return record

    def unsubscribe(self, token: str, context: Context) -> SubscriberRecord | None:
        """RFC 8058 one-click (or the page's button): idempotent, effective at once."""
        record = self.subscriber_for(token, Purpose.UNSUBSCRIBE)
        if record is None:
            return None
        return self.store.unsubscribe(record.id, context)[0]

    def save_preferences(
        self,
        token: str,
        action: str,
        *,
        topics: Sequence[str],
        pause_days: int | None,
        context: Context,
    ) -> SubscriberRecord | None:
        record = self.subscriber_for(token, Purpose.PREFERENCES)
        if record is None:
            return None
        if action == "unsubscribe":
            return self.store.unsubscribe(record.id, context)[0]
        if action == "resubscribe":
            # A preferences link survives in old mail, forwards and the List-Unsubscribe
            # header that mailbox providers keep: coming back is double opt-in again.
            # The log shows the request here and the confirmation when its link is used.
            if record.status == Status.UNSUBSCRIBED:
                self.store.note(record.id, "resubscribe requested", context)
                if self.store.claim_confirmation(
                    record.id,
                    min_interval=timedelta(minutes=self.web.confirm_resend_minutes),
                    max_sends=self.web.confirm_max_sends,
                ):
                    self._send_confirmation(record)
            return record
        if action == "pause":
            if not pause_days or pause_days not in (30, 90, 180):
                raise InputError("choose a pause of 30, 90 or 180 days")
            until = now() + timedelta(days=pause_days)
            return self.store.update_preferences(record.id, paused_until=until, context=context)
        if action == "resume":
            return self.store.update_preferences(record.id, clear_pause=True, context=context)
        if action == "topics":
            return self.store.update_preferences(record.id, topics=topics, context=context)
        raise InputError(f"unknown action {action!r}")

    def subscribe(
        self, email: str, name: str | None, topics: Sequence[str], context: Context
    ) -> None:
        """Create a pending subscriber and mail a confirmation link, within resend limits.

        Returns nothing on purpose: the page says the same thing whatever happened.
        """
        address = parse_address(email)
        name = checked_name(name)
        record = self.store.find(address.email)
        if record is None:
            try:
                record = self.store.add(
                    address.email,
                    name=name,
                    topics=topics,
                    status=Status.PENDING,
                    context=context,
                )
            except InputError:
                return  # erased (suppressed), or created by a concurrent request
        if record.status == Status.ACTIVE or record.status in SUPPRESSED - {Status.UNSUBSCRIBED}:
            return
        if not self.store.claim_confirmation(
            record.id,
            min_interval=timedelta(minutes=self.web.confirm_resend_minutes),
            max_sends=self.web.confirm_max_sends,
        ):
            return
        self._send_confirmation(record)

    def confirm(self, token: str, context: Context) -> SubscriberRecord | None:
        record = self.subscriber_for(token, Purpose.CONFIRM)
        if record is None:
            return None
        if record.status == Status.PENDING:
            return self.store.change_status(record.id, Status.ACTIVE, context, unless=SUPPRESSED)[0]
        if record.status == Status.UNSUBSCRIBED:
            return self.store.resubscribe(
                record.id, "confirmed a new subscription through the web form", context
            )[0]
        return record

    def _send_confirmation(self, record: SubscriberRecord) -> None:
        assert record.email is not None
        token = self.signer.sign(Purpose.CONFIRM, record.id)
        subject = f"Please confirm your subscription to {self.identity.name}"
        rendering = self.renderer.render_pair(
            "email/confirm.mjml.j2",
            "email/confirm.txt.j2",
            {
                "newsletter": self.renderer.newsletter_context(),
                "subject": subject,
                "ttl_days": self.web.confirm_ttl_days,
            },
            slug="confirmation",
            subject=subject,
            preheader="",
        )
        recipient = Recipient(
            email=record.email,
            first_name=record.first_name,
            name=record.name,
            confirm_url=f"{self.identity.base_url}/confirm/{token}",
            key=delivery_key(record.id),
            subscriber_id=record.id,
        )
        # A transport yields outcomes as it goes: draining it is what sends.
        for outcome in self.transport.send(rendering.rendered, [recipient], stream=CONFIRM_STREAM):
            if outcome.result != Result.SENT:
                log.warning("confirmation to subscriber %s: %s", record.id, outcome.error)
