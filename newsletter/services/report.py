"""`newsletter report`: everything one send's HTML page shows, gathered in one place.

The figures are `send_stats`'s, so the page and `newsletter stats` never disagree. On top
of them: opens and clicks per hour over the first 72 hours (unique people per hour; machine
opens left out, they are mail-privacy proxies fetching images, not readers), and the bounce
and unsubscribe reasons grouped so that "550 5.1.1 user unknown" and "5.1.1" are one line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from markupsafe import Markup
from sqlalchemy import Engine, func, select

from newsletter.domain.report_chart import hourly_chart
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import provider_events, subscriber_events
from newsletter.infra.workspace import Workspace
from newsletter.services.ledger import Ledger, SendRecord
from newsletter.services.render import Renderer
from newsletter.services.stats import SendStats, left_after, send_stats

TEMPLATE = "report/report.html.j2"
HOURS = 72
BOUNCE_KINDS = ("bounce", "soft-bounce", "dropped")
KIND_NAMES = {"bounce": "bounce", "soft-bounce": "soft bounce", "dropped": "dropped"}

# Unsubscribe paths (consent-log sources) as the page names them, in the page's order.
PATHS = {
    "one-click": "one-click",
    "web-form": "page",
    "preferences": "preferences page",
    "mailto": "mailto",
    "provider-event": "provider",
    "cli": "by hand (CLI)",
    "import": "import",
}
ALWAYS_SHOWN = ("one-click", "web-form", "mailto", "provider-event")


@dataclass(frozen=True)
class Reason:
    """One group of bounces or unsubscribes, counted in addresses (people), not events."""

    label: str
    count: int
    kinds: list[str] = field(default_factory=list)  # bounce / soft bounce / dropped, or path
    example: str | None = None  # one original text, addresses taken out


@dataclass(frozen=True)
class Report:
    stats: SendStats
    send: SendRecord
    hours: int
    opens_by_hour: list[int]  # unique people per hour, machine opens left out
    clicks_by_hour: list[int]  # unique people per hour
    not_charted: dict[str, int]  # open/click events outside the window, by kind
    events_by_provider: dict[str, int]  # sendgrid / mail / own
    bounce_reasons: list[Reason]
    unsubscribe_reasons: list[Reason]
    unsubscribed_by_path: list[tuple[str, int]]
    generated_at: datetime

    @property
    def events(self) -> int:
        return sum(self.events_by_provider.values())

    @property
    def charted(self) -> bool:
        return any(self.opens_by_hour) or any(self.clicks_by_hour)


def build_report(engine: Engine, send_id: int, *, hours: int = HOURS, links: int = 10) -> Report:
    send = Ledger(engine).get(send_id)  # an unknown id fails here, as `stats` does
    stats = send_stats(engine, send_id, links=links)
    events = provider_events.c
    with reading(engine).connect() as connection:
        by_provider = dict(
            connection.execute(
                select(events.provider, func.count())
                .where(events.send_id == send_id)
                .group_by(events.provider)
            ).all()
        )
        activity = connection.execute(
            select(
                events.id,
                events.kind,
                events.subscriber_id,
                events.machine,
                func.coalesce(events.occurred_at, events.received_at),
            ).where(events.send_id == send_id, events.kind.in_(("open", "click")))
        ).all()
        returned = connection.execute(
            select(events.id, events.kind, events.subscriber_id, events.detail).where(
                events.send_id == send_id, events.kind.in_(BOUNCE_KINDS)
            )
        ).all()
        left = connection.execute(
            select(
                subscriber_events.c.subscriber_id,
                subscriber_events.c.source,
                subscriber_events.c.detail,
            ).where(*left_after(connection, send_id, send.created_at))
        ).all()
    opens, clicks, outside = hourly(activity, send.created_at, hours)
    return Report(
        stats=stats,
        send=send,
        hours=hours,
        opens_by_hour=opens,
        clicks_by_hour=clicks,
        not_charted=outside,
        events_by_provider=by_provider,
        bounce_reasons=group_bounces(returned),
        unsubscribe_reasons=group_unsubscribes(left),
        unsubscribed_by_path=by_path(stats.unsubscribed),
        generated_at=now(),
    )


def hourly(
    rows: Iterable[tuple[int, str, int | None, bool, datetime | None]],
    start: datetime,
    hours: int,
) -> tuple[list[int], list[int], dict[str, int]]:
    """Unique people per hour since `start`; events before it (clock skew) or after the
    window are counted apart. An event without a subscriber counts as its own person."""
    seen: dict[str, set[tuple[int, object]]] = {"open": set(), "click": set()}
    outside = {"open": 0, "click": 0}
    for event_id, kind, subscriber_id, machine, at in rows:
        if kind == "open" and machine:
            continue
        moment = utc(at)
        offset = (moment - start) if moment is not None else None
        if offset is None or offset < timedelta(0) or offset >= timedelta(hours=hours):
            outside[kind] += 1
            continue
        hour = int(offset // timedelta(hours=1))
        seen[kind].add((hour, subscriber_id if subscriber_id is not None else f"e{event_id}"))
    series = {kind: [0] * hours for kind in seen}
    for kind, pairs in seen.items():
        for hour, _ in pairs:
            series[kind][hour] += 1
    return series["open"], series["click"], {k: n for k, n in outside.items() if n}


def by_path(unsubscribed: dict[str, int]) -> list[tuple[str, int]]:
    """The four main paths always (a zero says something too), any other only if used."""
    shown = [
        (label, unsubscribed.get(source, 0))
        for source, label in PATHS.items()
        if source in ALWAYS_SHOWN or unsubscribed.get(source)
    ]
    return shown + sorted((s, n) for s, n in unsubscribed.items() if s not in PATHS and n)


# -- reasons ---------------------------------------------------------------------------------

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.])([45]\d\d)(?![\d.])")
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")
_IP = re.compile(r"\[?\b\d{1,3}(?:\.\d{1,3}){3}\b\]?")

# RFC 3463 / RFC 5248 codes seen most often, in words.
ENHANCED = {
    "5.1.1": "mailbox does not exist",
    "5.1.2": "domain does not exist",
    "5.1.3": "address is not valid",
    "5.1.10": "domain takes no mail (null MX)",
    "5.2.1": "mailbox disabled",
    "5.2.2": "mailbox full",
    "5.2.3": "message too large",
    "5.4.1": "refused by the receiving server",
    "5.4.4": "no mail server for the domain",
    "5.7.1": "refused by policy (blocked)",
    "5.7.26": "sender authentication failed (SPF/DKIM/DMARC)",
}
SUBJECTS = {
    "0": "other",
    "1": "address problem",
    "2": "mailbox problem",
    "3": "receiving system problem",
    "4": "network or routing problem",
    "5": "protocol problem",
    "6": "content refused",
    "7": "refused by policy",
}
BASIC = {
    "421": "service not available",
    "450": "mailbox unavailable",
    "451": "error at the receiving server",
    "452": "not enough storage",
    "550": "mailbox unavailable",
    "551": "user not local",
    "552": "storage exceeded",
    "553": "mailbox name not allowed",
    "554": "transaction failed",
}
# SendGrid's words when there is no server reply (a bounce type, a drop reason).
WORDS = {
    "bounce": "bounced (no reason given)",
    "blocked": "blocked (no reason given)",
    "bounced address": "address bounced before",
    "unsubscribed address": "address unsubscribed at the provider",
    "spam reporting address": "address reported spam before",
    "invalid": "address is not valid",
}


def scrub(text: str, limit: int = 160) -> str:
    """A reason fit to show: addresses and IP numbers out, one line, cut to `limit`."""
    cleaned = _IP.sub("[ip]", _ADDRESS.sub("[address]", text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def bounce_reason(detail: str | None) -> str:
    """The group a bounce or drop belongs to: its enhanced status code in words when it
    has one, else its basic SMTP code, else SendGrid's word, else the text normalised."""
    text = _IP.sub("[ip]", (detail or "").strip())  # an IP number is no status code
    if not text:
        return "no reason given"
    enhanced = _ENHANCED.search(text)
    if enhanced:
        code = ".".join(enhanced.groups())
        words = ENHANCED.get(code) or SUBJECTS.get(enhanced.group(2), "delivery problem")
        return f"{code} {'temporary: ' if code.startswith('4') else ''}{words}"
    basic = _BASIC.search(text)
    if basic:
        code = basic.group(1)
        temporary = "temporary: " if code.startswith("4") else ""
        return f"{code} {temporary}{BASIC.get(code, 'refused')}"
    lowered = scrub(text, 80).lower().strip(" .:;,")
    return WORDS.get(lowered, re.sub(r"\d+", "#", lowered))


def group_bounces(rows: Iterable[tuple[int, str, int | None, str | None]]) -> list[Reason]:
    people: dict[str, set[object]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    examples: dict[str, str] = {}
    for event_id, kind, subscriber_id, detail in rows:
        label = bounce_reason(detail)
        people[label].add(subscriber_id if subscriber_id is not None else f"e{event_id}")
        kinds[label].add(KIND_NAMES.get(kind, kind))
        example = scrub(detail or "")
        if label not in examples and _tells_more(example, label):
            examples[label] = example
    return _ranked(people, kinds, examples)


def _tells_more(example: str, label: str) -> bool:
    """An original text is worth showing beside its group's label unless it is no more
    than the label's own words or code."""
    plain = example.lower().strip(" .:;,")
    return bool(plain) and plain not in WORDS and plain != label.lower().split(" ", 1)[0]


def unsubscribe_reason(source: str, detail: str | None) -> str:
    """How someone left, in words. Provider and inbound details end in an event id,
    which would split every row into a group of one: it is dropped."""
    words = (detail or "").split()
    if source == "provider-event" and len(words) >= 2 and words[0] == "sendgrid":
        return f"SendGrid {words[1].replace('_', ' ')} event"
    if source == "mailto" or (words and words[0] == "inbound"):
        return "mail to the unsubscribe address"
    if source == "one-click":
        return "the mail client's unsubscribe button"
    if source == "web-form":
        return "the unsubscribe page (footer link)"
    if source == "preferences":
        return "the preferences page"
    return scrub(detail, 120) if detail else "no reason recorded"


def group_unsubscribes(rows: Iterable[tuple[int, str, str | None]]) -> list[Reason]:
    people: dict[str, set[object]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    for subscriber_id, source, detail in rows:
        label = unsubscribe_reason(source, detail)
        people[label].add(subscriber_id)
        kinds[label].add(PATHS.get(source, source))
    return _ranked(people, kinds, {})


def _ranked(
    people: dict[str, set[object]], kinds: dict[str, set[str]], examples: dict[str, str]
) -> list[Reason]:
    return [
        Reason(label, len(who), sorted(kinds[label]), examples.get(label))
        for label, who in sorted(people.items(), key=lambda item: (-len(item[1]), item[0]))
    ]


# -- the page --------------------------------------------------------------------------------


def render_report(workspace: Workspace, report: Report) -> str:
    """The self-contained page: the workspace's template, the chart inline."""
    chart = hourly_chart(
        report.opens_by_hour,
        report.clicks_by_hour,
        title=f"Opens and clicks per hour, first {report.hours} hours of send #{report.send.id}",
    )
    renderer = Renderer(workspace.templates_dir, workspace.settings)
    return renderer.render_template(
        TEMPLATE,
        {
            "report": report,
            "s": report.stats,
            "send": report.send,
            "chart": Markup(chart),  # built from numbers and escaped text only
            "newsletter": workspace.settings.name,
        },
    )
