"""Starting sends: build and check the issue, snapshot the audience, and the two sends that
stay outside the ledger (test sends to named addresses, dry runs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from newsletter.domain.checks import Finding, has_errors
from newsletter.domain.list_headers import ListIdentity
from newsletter.domain.message import MessageTemplate, message_id
from newsletter.domain.personalize import Recipient
from newsletter.domain.tokens import Signer
from newsletter.errors import ExitStatus, InputError
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import subscribers
from newsletter.infra.transports.base import Outcome, Transport
from newsletter.infra.transports.factory import sender_of
from newsletter.infra.workspace import Workspace
from newsletter.services.build import Build, Builder, sample_recipient
from newsletter.services.claims import Claimed
from newsletter.services.dispatch import recipient_for
from newsletter.services.ledger import Ledger, SendRecord, audience_filter
from newsletter.services.subscribers import now, parse_address, utc


class ChecksFailed(InputError):
    """Pre-flight errors: nothing is sent."""

    exit_status = ExitStatus.CHECKS_FAILED


@dataclass(frozen=True)
class Prepared:
    build: Build
    audience: int

    @property
    def warnings(self) -> list[Finding]:
        return self.build.findings


def build_for_sending(workspace: Workspace, issue: str) -> Build:
    build = Builder(workspace).build(issue)
    if has_errors(build.findings):
        errors = sum(1 for f in build.findings if f.severity == "error")
        raise ChecksFailed(
            f"{errors} pre-flight check error(s) in {build.issue.slug}; "
            f"run `newsletter check {build.issue.slug}` for details"
        )
    return build


def audience_size(engine: Engine, topic: str | None) -> int:
    with reading(engine).connect() as connection:
        return connection.execute(
            select(func.count()).select_from(subscribers).where(*audience_filter(now(), topic))
        ).scalar_one()


def prepare(workspace: Workspace, engine: Engine, issue: str, topic: str | None) -> Prepared:
    return Prepared(build_for_sending(workspace, issue), audience_size(engine, topic))


def create_send(
    ledger: Ledger, prepared: Prepared, transport: str, topic: str | None
) -> SendRecord:
    return ledger.create_send(prepared.build.rendered, transport, topic)


def test_send(
    workspace: Workspace, build: Build, transport: Transport, addresses: Sequence[str]
) -> list[Outcome]:
    """`--to`: marked [TEST], outside the list's ledger, links that lead nowhere real."""
    sample = sample_recipient(workspace)
    recipients = []
    for index, raw in enumerate(addresses):
        address = parse_address(raw)
        recipients.append(
            Recipient(
                email=address.email,
                first_name=None,
                unsubscribe_url=sample.unsubscribe_url,
                preferences_url=sample.preferences_url,
                key=f"test-{index}",
            )
        )
    stream = f"test-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    return transport.send(build.rendered, recipients, stream=stream, subject_prefix="[TEST] ")


def dry_run(
    workspace: Workspace,
    engine: Engine,
    build: Build,
    identity: ListIdentity,
    signer: Signer,
    topic: str | None,
) -> Counter[str]:
    """Everything but the transport: audience, re-check, personalization and MIME."""
    outcomes: Counter[str] = Counter()
    sender = sender_of(workspace)
    at = now()
    template = MessageTemplate(build.rendered, sender, date=at)
    query = (
        select(subscribers)
        .where(*audience_filter(at, topic, with_paused=True))
        .order_by(subscribers.c.id)
    )
    with reading(engine).connect() as connection:
        for row in connection.execute(query).yield_per(1000):
            paused = utc(row.paused_until)
            if paused is not None and paused > at:
                outcomes["skipped (paused)"] += 1
                continue
            claim = Claimed(0, row.id, row.email, row.name, 0)
            recipient = recipient_for(claim, identity, signer, None)
            template.render(recipient, message_id("dry-run", recipient.key, sender.domain))
            outcomes["would send"] += 1
    return outcomes
