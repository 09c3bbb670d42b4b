"""SendGrid's suppression lists and ours, kept in step (`newsletter suppressions sync`).

SendGrid keeps its own lists of bounced, invalid, complaining and unsubscribed addresses,
filled by recipients and mail servers whether or not our webhook heard about it. A sync
pulls them and applies them the way provider events are applied (services/feedback.py):
bounces and invalid emails make a subscriber bounced, spam reports complained, global and
group unsubscribes unsubscribed; never back to active, never weaker than a complaint.

Each entry applied is stored once in `provider_events` under an id made from its list, the
address and when SendGrid listed it, so a second sync stores and changes nothing, and
someone who came back after a bounce is not suppressed again by the same old entry. The id
holds the address only as the salted hash erasure keeps (`erased_hash`): erasing a person
clears the rest. Addresses not on our list are counted and left alone: SendGrid already
suppresses them. All changes of one sync happen in one transaction.

`push` does the opposite for the unsubscribe group: our unsubscribed and complained
addresses that SendGrid does not yet hold there are added, so mail sent outside this tool
with that group respects them too. Each address pushed is stored under the id its group
entry will have, so its echo in the next pull is not news.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from newsletter.domain.subscriber import (
    NEVER_OVERRIDES,
    InvalidAddress,
    Source,
    Status,
    erased_hash,
    normalize_address,
)
from newsletter.errors import ConfigError, InputError, NewsletterError
from newsletter.infra.db.clock import now
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import provider_events, subscribers
from newsletter.infra.sendgrid_api import Entry, SuppressionList, SuppressionsApi
from newsletter.services.consent_log import change_status_in
from newsletter.services.provider_events import (
    event_row,
    known_event_ids,
    moment,
    subscriber_ids_by_key,
)
from newsletter.services.subscribers import Context, erasure_salt

PUSHED_STATUSES = (Status.UNSUBSCRIBED, Status.COMPLAINED)
GROUP_SETTING = "[sendgrid] asm_group_id"
T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """One of SendGrid's lists, and what being on it means here."""

    name: str  # in event ids and `provider_events.kind` ("suppression-<name>")
    label: str
    source: SuppressionList | None  # None: the unsubscribe group
    status: Status  # what it never overrides: NEVER_OVERRIDES[status]


# Strongest first, so a person on several lists moves once, straight to the strongest status.
KINDS = (
    Kind(
        "spam-report",
        "spam reports",
        SuppressionList.SPAM_REPORTS,
        Status.COMPLAINED,
    ),
    Kind("bounce", "bounces", SuppressionList.BOUNCES, Status.BOUNCED),
    Kind("invalid-email", "invalid emails", SuppressionList.INVALID_EMAILS, Status.BOUNCED),
    Kind(
        "unsubscribe",
        "global unsubscribes",
        SuppressionList.UNSUBSCRIBES,
        Status.UNSUBSCRIBED,
    ),
    Kind("group-unsubscribe", "group unsubscribes", None, Status.UNSUBSCRIBED),
)


@dataclass
class KindCount:
    """What one list held and did."""

    kind: str
    label: str
    status: str  # what it makes a subscriber on our list
    pulled: int = 0
    on_list: int = 0  # entries whose address is one of our subscribers
    new: int = 0  # of those, entries no earlier sync stored
    changed: int = 0  # subscribers whose status this list changed

    @property
    def not_on_list(self) -> int:
        return self.pulled - self.on_list

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "status": self.status,
            "pulled": self.pulled,
            "on_list": self.on_list,
            "not_on_list": self.not_on_list,
            "new": self.new,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class PushResult:
    group_id: int
    ours: int  # our unsubscribed and complained subscribers
    already: int  # of those, already in the group
    pushed: int  # added by this sync

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "ours": self.ours,
            "already_in_group": self.already,
            "pushed": self.pushed,
        }


@dataclass(frozen=True)
class SyncReport:
    since: date | None
    group_id: int | None  # None: no group configured, its list was not pulled
    kinds: list[KindCount] = field(default_factory=list)
    push: PushResult | None = None

    @property
    def changed(self) -> int:
        return sum(k.changed for k in self.kinds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "group_id": self.group_id,
            "kinds": [k.to_dict() for k in self.kinds],
            "changed": self.changed,
            "push": self.push.to_dict() if self.push else None,
        }


class PushIncomplete(NewsletterError):
    """The pull was applied, but SendGrid stopped taking our addresses part-way."""

    def __init__(self, cause: NewsletterError, pushed: int, total: int) -> None:
        self.exit_status = cause.exit_status
        super().__init__(
            f"{cause} (the pull was applied; {pushed} of {total} addresses were pushed "
            "before this, the rest go at the next `sync --push`)"
        )


def parse_since(text: str | None) -> date | None:
    """`--since YYYY-MM-DD`, a day in UTC."""
    if text is None:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text.strip())
    raise InputError(f"--since: {text!r} is not a date (YYYY-MM-DD, in UTC)")


def start_time(since: date) -> int:
    """The unix second the day begins, in UTC: SendGrid's `start_time` (inclusive)."""
    return int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp())


def sync(
    engine: Engine,
    api: SuppressionsApi,
    *,
    group_id: int | None,
    since: date | None = None,
    push: bool = False,
) -> SyncReport:
    """Pull every list (the group's too when one is configured), apply them in one
    transaction, then with `push` add our unsubscribed and complained to the group."""
    if push and group_id is None:
        raise ConfigError(
            f"--push needs {GROUP_SETTING}: the unsubscribe group our addresses go to "
            "(or set NEWSLETTER_SENDGRID__ASM_GROUP_ID)",
            "newsletter.toml",
        )
    after = start_time(since) if since is not None else None
    pulled: list[tuple[Kind, list[Entry]]] = []
    members: list[str] = []
    for kind in KINDS:
        if kind.source is not None:
            pulled.append((kind, api.pull(kind.source, after)))
        elif group_id is not None:  # the group's list has no time filter: always whole
            members = api.group_members(group_id)
            pulled.append((kind, [Entry(email, None, None) for email in members]))
    counts = _once_more_on_conflict(lambda: _apply(engine, pulled, group_id))
    if not push:
        return SyncReport(since, group_id, counts)
    assert group_id is not None
    return SyncReport(since, group_id, counts, _push(engine, api, group_id, members))


def _once_more_on_conflict(work: Callable[[], T]) -> T:
    """A sync running at the same time may store the same event ids first (PostgreSQL
    tells us at the insert); run again, when they are known, rather than fail."""
    try:
        return work()
    except IntegrityError:
        return work()


def key_of(email: str) -> str:
    """Our `email_key` for an address as SendGrid spells it."""
    try:
        return normalize_address(email).key
    except InvalidAddress:  # SendGrid's invalid_emails hold such; never one of ours
        return email.strip().casefold()


def _apply(
    engine: Engine, pulled: list[tuple[Kind, list[Entry]]], group_id: int | None
) -> list[KindCount]:
    counts = [KindCount(kind.name, kind.label, str(kind.status)) for kind, _ in pulled]
    keyed = [[(entry, key_of(entry.email)) for entry in entries] for _, entries in pulled]
    received_at = now()
    with engine.begin() as connection:
        ids = subscriber_ids_by_key(connection, {key for entries in keyed for _, key in entries})
        salt = erasure_salt(connection)
        rows: dict[str, tuple[Kind, KindCount, dict[str, Any]]] = {}
        for (kind, _), count, entries in zip(pulled, counts, keyed, strict=True):
            count.pulled = len(entries)
            for entry, key in entries:
                subscriber_id = ids.get(key)
                if subscriber_id is None:
                    continue
                count.on_list += 1
                event_id = _event_id(kind, key, entry, group_id, salt)
                rows.setdefault(
                    event_id, (kind, count, _row(kind, event_id, entry, subscriber_id, received_at))
                )
        known = _known(connection, list(rows))
        fresh = [item for event_id, item in rows.items() if event_id not in known]
        if fresh:
            connection.execute(insert(provider_events), [row for _, _, row in fresh])
        for kind, count, row in fresh:
            count.new += 1
            context = Context(Source.PROVIDER, f"sendgrid suppression list {row['event_id']}")
            count.changed += change_status_in(
                connection,
                row["subscriber_id"],
                kind.status,
                context,
                unless=NEVER_OVERRIDES[kind.status],
            )
    return counts


def _event_id(kind: Kind, key: str, entry: Entry, group_id: int | None, salt: str) -> str:
    """Deterministic: the same entry is the same event at every sync. The address appears
    only as the salted hash erasure leaves behind (an event id is never cleared)."""
    person = erased_hash(key, salt)[:40]
    when = str(entry.created) if entry.created is not None else f"group-{group_id}"
    return f"suppression:{kind.name}:{person}:{when}"[:100]


def _row(
    kind: Kind, event_id: str, entry: Entry, subscriber_id: int, received_at: datetime
) -> dict[str, Any]:
    return event_row(
        "sendgrid",
        event_id,
        f"suppression-{kind.name}",
        received_at,
        email=entry.email,
        subscriber_id=subscriber_id,
        occurred_at=moment(entry.created) if entry.created else None,
        detail=entry.reason,
    )


_known = known_event_ids  # a name of its own: tests make two syncs race through it


def _push(engine: Engine, api: SuppressionsApi, group_id: int, members: list[str]) -> PushResult:
    in_group = {key_of(email) for email in members}
    with reading(engine).connect() as connection:
        suppressed = connection.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.email_key)
            .where(
                subscribers.c.status.in_([str(s) for s in PUSHED_STATUSES]),
                subscribers.c.email_key.is_not(None),  # erased: nothing left to push
            )
            .order_by(subscribers.c.id)
        ).all()
    missing = {email: (subscriber_id, key) for subscriber_id, email, key in suppressed}
    missing = {email: found for email, found in missing.items() if found[1] not in in_group}
    progress = [0]

    def done(part: list[str]) -> None:
        pushed = [(email, *missing[email]) for email in part]
        _once_more_on_conflict(lambda: _record_pushed(engine, group_id, pushed))
        progress[0] += len(part)

    try:
        pushed = api.add_to_group(group_id, list(missing), done=done)
    except NewsletterError as exc:
        raise PushIncomplete(exc, progress[0], len(missing)) from None
    return PushResult(group_id, len(suppressed), len(suppressed) - len(missing), pushed)


def _record_pushed(engine: Engine, group_id: int, pushed: list[tuple[str, int, str]]) -> None:
    """Store what we put in the group under the id its group entry will have, so the next
    pull knows it: someone who unsubscribed, was pushed and then came back is not
    unsubscribed again by the echo of our own push."""
    received_at = now()
    kind = next(k for k in KINDS if k.source is None)
    with engine.begin() as connection:
        salt = erasure_salt(connection)
        rows = {}
        for email, subscriber_id, key in pushed:
            entry = Entry(email, None, None)
            event_id = _event_id(kind, key, entry, group_id, salt)
            rows[event_id] = {
                **_row(kind, event_id, entry, subscriber_id, received_at),
                "kind": "suppression-group-push",
                "occurred_at": received_at,
            }
        known = _known(connection, list(rows))
        fresh = [row for event_id, row in rows.items() if event_id not in known]
        if fresh:
            connection.execute(insert(provider_events), fresh)
