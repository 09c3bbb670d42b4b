"""Starting and running sends: the gates before a send exists (checks, drafts, once per
issue, topic, a reachable transport), the send itself, and the two sends that stay outside
the ledger (test sends to named addresses, dry runs).

The CLI and the scheduler call these; they only present what comes back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from newsletter.domain.checks import Finding, Severity
from newsletter.domain.clicks import track_links
from newsletter.domain.list_headers import ListIdentity
from newsletter.domain.message import MessageTemplate, message_id
from newsletter.domain.personalize import Recipient
from newsletter.domain.tokens import Purpose, Signer
from newsletter.errors import ExitStatus, InputError, NewsletterError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import subscribers
from newsletter.infra.transports.base import (
    Outcome,
    Transport,
    TransportFatal,
    TransportUnavailable,
)
from newsletter.infra.transports.factory import make_transport, sender_of, transport_settings
from newsletter.infra.workspace import Workspace
from newsletter.services.audience import Audience, check_topic
from newsletter.services.build import Build, Builder, sample_recipient
from newsletter.services.claims import Claimed, WorkQueue
from newsletter.services.dispatch import Dispatcher, SendOptions, recipient_for, stream_of
from newsletter.services.ledger import AlreadySent, Ledger, SendRecord
from newsletter.services.links import list_identity, signer
from newsletter.services.reuse import carried_snippets, reuse_findings
from newsletter.services.subscribers import parse_address


class ChecksFailed(InputError):
    """Pre-flight errors: nothing is sent. Carries the findings, to be shown."""

    exit_status = ExitStatus.CHECKS_FAILED

    def __init__(self, slug: str, findings: list[Finding]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.severity == Severity.ERROR]
        first = errors[0]
        where = f"{first.where}: " if first.where else ""
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        super().__init__(
            f"{slug} fails its pre-flight checks, nothing was sent: {where}{first.message}{more}"
        )


class TransportDown(NewsletterError):
    """The transport cannot be reached or refuses us: no send is created."""

    exit_status = ExitStatus.UNAVAILABLE


@dataclass(frozen=True)
class SendPlan:
    """An issue that passed every gate, and who it would go to."""

    build: Build
    audience: Audience
    size: int
    transport: str
    earlier: SendRecord | None  # an earlier send of the issue (only with --again)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.build.findings if f.severity == Severity.WARNING]

    @property
    def snippets(self) -> list[tuple[str, str]]:
        """(id, content hash) of each snippet the render carries, for the ledger."""
        return carried_snippets(self.build.issue)


def build_for_sending(workspace: Workspace, issue: str, *, allow_draft: bool = False) -> Build:
    build = Builder(workspace).build(issue)
    if any(f.severity == Severity.ERROR for f in build.findings):
        raise ChecksFailed(build.issue.slug, build.findings)
    if build.issue.meta.status == "draft" and not allow_draft:
        draft = next((f for f in build.findings if f.code == "issue-draft"), None)
        raise InputError(
            "the issue is marked draft; set `status: ready` to send it (or --allow-draft)",
            draft.file if draft else None,
            draft.line if draft else None,
        )
    if workspace.settings.tracking.clicks:  # checks ran on the links as written
        tag = signer(workspace, allow_generated=True).link_tag
        tracked = track_links(build.rendered, workspace.settings.base_url, tag)
        build = replace(build, rendered=tracked)
    return build


def plan_send(
    workspace: Workspace,
    engine: Engine,
    issue: str,
    *,
    topic: str | None = None,
    transport: str | None = None,
    again: bool = False,
    allow_draft: bool = False,
) -> SendPlan:
    """Every gate a real send passes, in the order an editor would fix them."""
    name = transport or workspace.settings.transport
    transport_settings(workspace, name)  # an unknown transport is an input error
    signer(workspace, allow_generated=name == "outbox")  # real sends need the real key
    build = build_for_sending(workspace, issue, allow_draft=allow_draft)
    check_topic(workspace, engine, topic)
    earlier = Ledger(engine).earlier_send(build.issue.slug)
    if earlier is not None and not again:
        raise AlreadySent(earlier)
    audience = Audience(topic)
    size = audience.count(engine)
    if size == 0:
        raise InputError(
            "no active subscribers" + (f" follow '{topic}' or no topic" if topic else "")
        )
    # A snippet this audience mostly got already, unchanged: a warning before the prompt.
    reused = reuse_findings(workspace, engine, build.issue, audience)
    build = replace(build, findings=[*build.findings, *reused])
    return SendPlan(build, audience, size, name, earlier)


def probe(transport: Transport) -> None:
    """Reach the server before a send exists: a send that cannot go anywhere is not made."""
    try:
        transport.probe()
    except (TransportUnavailable, TransportFatal) as exc:
        raise TransportDown(f"{transport.name}: {exc}") from None


def create_send(ledger: Ledger, plan: SendPlan, *, again: bool = False) -> SendRecord:
    return ledger.create_send(
        plan.build.rendered, plan.transport, plan.audience, again=again, snippets=plan.snippets
    )


def start_send(
    workspace: Workspace, ledger: Ledger, plan: SendPlan, *, again: bool = False
) -> SendRecord:
    """Probe the transport, then record the send: a server that is down or refuses us is
    exit 69, and no send is made."""
    sender = make_transport(workspace, plan.transport)
    try:
        probe(sender)
    finally:
        sender.close()
    return create_send(ledger, plan, again=again)


def options_for(
    workspace: Workspace,
    transport: str,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    batch_size: int | None = None,
) -> SendOptions:
    configured = transport_settings(workspace, transport)
    engine = workspace.settings.sending
    return SendOptions(
        batch_size=batch_size or (1000 if transport == "sendgrid" else 100),
        concurrency=concurrency or configured.concurrency,
        rate=rate or configured.rate,
        max_attempts=engine.max_attempts,
        max_consecutive_failures=engine.pause_after_failures,
        max_unreachable_rounds=engine.pause_after_unreachable,
        backoff_base=engine.retry_base_seconds,
    )


def dispatcher_for(
    workspace: Workspace,
    ledger: Ledger,
    record: SendRecord,
    options: SendOptions,
    *,
    on_handled: Callable[[int], None] | None = None,
    on_waiting: Callable[[float, str], None] | None = None,
) -> Dispatcher:
    return Dispatcher(
        ledger,
        make_transport(workspace, record.transport),
        list_identity(workspace.settings),
        signer(workspace, allow_generated=record.transport == "outbox"),
        options,
        on_handled,
        on_waiting,
        journals=journal_folder(workspace),
    )


@dataclass(frozen=True)
class Requeued:
    """`--resend-uncertain`: how many were queued again, and how many of those the
    recovery that ran just before had found (a crash's own uncertain recipients)."""

    count: int
    from_recovery: int


def resend_uncertain(workspace: Workspace, ledger: Ledger, send_id: int) -> Requeued:
    """Recovery first, so a crash's own claims are judged before they are queued again."""
    _, recovered = WorkQueue(ledger.engine, journal_folder(workspace)).recover(send_id)
    return Requeued(ledger.resend_uncertain(send_id), recovered)


def journal_folder(workspace: Workspace) -> Path:
    """Where this machine's workers keep their journals (see infra/journal.py)."""
    return workspace.state_dir / "journal"


def outbox_folder(workspace: Workspace, send_id: int) -> Path:
    return workspace.state_dir / "outbox" / stream_of(send_id)


def test_recipients(workspace: Workspace, to: Sequence[str], use_list: bool) -> list[str]:
    """`--test` is the `[test] recipients` list, `--to` adds to it (or, alone, replaces it);
    `--to` takes several addresses separated by commas. Each address once."""
    given = [a.strip() for raw in to for a in raw.split(",") if a.strip()]
    configured = list(workspace.settings.test.recipients) if use_list else []
    if use_list and not configured:
        raise InputError(
            "--test: no test recipients; add them to newsletter.toml under [test]: "
            'recipients = ["you@example.com"]'
        )
    seen: set[str] = set()
    unique = []
    for address in configured + given:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return unique


@dataclass(frozen=True)
class TestOutcome:
    address: str
    result: str
    error: str | None
    path: str | None  # the .eml file, for the outbox


def test_send(
    workspace: Workspace, build: Build, transport: Transport, addresses: Sequence[str]
) -> list[TestOutcome]:
    """`--to`: marked [TEST], outside the list's ledger, links that lead nowhere real
    (tracked links lead to their target without counting: subscriber 0 is nobody)."""
    sample = sample_recipient(workspace)
    click = signer(workspace, allow_generated=True).sign(Purpose.CLICK, 0)
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
                click_token=click,
            )
        )
    stream = f"test-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    probe(transport)
    try:
        outcomes: dict[str, Outcome] = {
            o.key: o
            for o in transport.send(
                build.rendered, recipients, stream=stream, subject_prefix="[TEST] "
            )
        }
    except (TransportUnavailable, TransportFatal) as exc:
        raise TransportDown(f"{transport.name}: {exc}") from None
    folder = workspace.state_dir / "outbox" / stream
    results = []
    for r in recipients:
        outcome = outcomes.get(r.key)
        path = folder / f"{r.key}.eml"
        results.append(
            TestOutcome(
                r.email,
                str(outcome.result) if outcome else "uncertain",
                outcome.error if outcome else "the transport reported no outcome",
                str(path) if transport.name == "outbox" and path.exists() else None,
            )
        )
    return results


def send_test_messages(
    workspace: Workspace, issue: str, transport: str | None, addresses: Sequence[str]
) -> list[TestOutcome]:
    """`send ISSUE --to/--test`: drafts allowed, through the given or configured transport."""
    build = build_for_sending(workspace, issue, allow_draft=True)
    sender = make_transport(workspace, transport or workspace.settings.transport)
    try:
        return test_send(workspace, build, sender, addresses)
    finally:
        sender.close()


def dry_run(
    workspace: Workspace,
    engine: Engine,
    build: Build,
    identity: ListIdentity,
    signer: Signer,
    audience: Audience,
) -> Counter[str]:
    """Everything but the transport: audience, re-check, personalization and MIME."""
    outcomes: Counter[str] = Counter()
    sender = sender_of(workspace)
    at = now()
    template = MessageTemplate(build.rendered, sender, date=at)
    clicks = "click_token" in set.union(*build.rendered.placeholders())
    query = (
        select(subscribers)
        .where(*audience.conditions(at, with_paused=True))
        .order_by(subscribers.c.id)
    )
    with reading(engine).connect() as connection:
        for row in connection.execute(query).yield_per(1000):
            paused = utc(row.paused_until)
            if paused is not None and paused > at:
                outcomes["skipped (paused)"] += 1
                continue
            claim = Claimed(0, row.id, row.email, row.name, 0)
            recipient = recipient_for(claim, identity, signer, None, clicks)
            template.render(recipient, message_id("dry-run", recipient.key, sender.domain))
            outcomes["would send"] += 1
    return outcomes
