"""Reuse tracking: which snippets each send carried (the id, and a hash of the snippet
file's text as it was rendered), when each snippet last went out and to how many, and the
check that warns before an issue repeats a snippet most of its audience already got.

The ledger writes the record with the send (`Ledger.insert_send(..., snippets=...)`, from
`carried_snippets`). Sends made before reuse tracking (migration 0005) have no record;
for those the snippets are read from the issue file, if it is still there, with the hash
unknown (`Carried.content_hash is None`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exists, func, select

from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.domain.findings import Finding, Severity
from newsletter.domain.issue import Issue, IssueFile
from newsletter.domain.snippet import Snippet
from newsletter.errors import InputError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.engine import reading
from newsletter.infra.db.schema import deliveries, send_snippets, sends, subscribers
from newsletter.infra.workspace import Workspace
from newsletter.services.audience import Audience
from newsletter.services.ledger import holds_its_issue
from newsletter.services.library import Library

SENT = str(DeliveryStatus.SENT)


def snippet_hash(snippet: Snippet) -> str:
    """SHA-256 of the snippet file's text: any edit, front matter included, changes it."""
    return hashlib.sha256(snippet.source_text.encode("utf-8")).hexdigest()


def carried_snippets(issue: Issue) -> list[tuple[str, str]]:
    """(id, content hash) of each snippet a composed issue carries, in order."""
    return [(snippet.id, snippet_hash(snippet)) for snippet in issue.snippets]


@dataclass(frozen=True)
class Carried:
    """One snippet in one send."""

    snippet_id: str
    content_hash: str | None  # None: the send predates reuse tracking
    send_id: int
    issue_slug: str
    at: datetime  # when the send was made
    status: str
    sent: int  # the send's deliveries that were sent
    total: int  # the send's recipients when it was made

    def to_dict(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "issue": self.issue_slug,
            "at": self.at.isoformat(),
            "status": self.status,
            "sent": self.sent,
            "total": self.total,
            "content_hash": self.content_hash,
        }


def carried_by_sends(
    workspace: Workspace, engine: Engine, snippet_ids: Collection[str] | None = None
) -> list[Carried]:
    """Every snippet every send carried, newest send first (the order within a send kept),
    for the sends that hold their issue (ledger.holds_its_issue)."""
    sent_counts = (
        select(deliveries.c.send_id, func.count().label("sent"))
        .where(deliveries.c.status == SENT)
        .group_by(deliveries.c.send_id)
        .subquery()
    )
    sent = func.coalesce(sent_counts.c.sent, 0).label("sent")
    counted = holds_its_issue()
    columns = (sends.c.id, sends.c.issue_slug, sends.c.created_at, sends.c.status, sends.c.total)
    recorded = (
        select(send_snippets.c.snippet_id, send_snippets.c.content_hash, *columns, sent)
        .select_from(
            sends.join(send_snippets, send_snippets.c.send_id == sends.c.id).outerjoin(
                sent_counts, sent_counts.c.send_id == sends.c.id
            )
        )
        .where(counted)
        .order_by(sends.c.id.desc(), send_snippets.c.position)
    )
    if snippet_ids is not None:
        recorded = recorded.where(send_snippets.c.snippet_id.in_(list(snippet_ids)))
    legacy = (
        select(*columns, sent)
        .select_from(sends.outerjoin(sent_counts, sent_counts.c.send_id == sends.c.id))
        .where(counted, ~exists().where(send_snippets.c.send_id == sends.c.id))
        .order_by(sends.c.id.desc())
    )
    with reading(engine).connect() as connection:
        rows = connection.execute(recorded).all()
        old = connection.execute(legacy).all()
    found = [Carried(r.snippet_id, r.content_hash, *_send_fields(r)) for r in rows]
    if old:
        library = Library(workspace)
        for row in old:
            for snippet_id in _listed_in_file(library, row.issue_slug):
                if snippet_ids is None or snippet_id in snippet_ids:
                    found.append(Carried(snippet_id, None, *_send_fields(row)))
        found.sort(key=lambda c: -c.send_id)  # stable: the order within a send stays
    return found


def _send_fields(row: Any) -> tuple[int, str, datetime, str, int, int]:
    return (row.id, row.issue_slug, utc(row.created_at), row.status, row.sent, row.total)


def _listed_in_file(library: Library, slug: str) -> list[str]:
    """A send from before reuse tracking: the snippets its issue file lists today."""
    try:
        return [snippet.id for snippet in library.compose(slug).snippets]
    except InputError:  # the file is gone or no longer composes: nothing known
        return []


# -- per snippet: last sent, to how many --------------------------------------------------


@dataclass(frozen=True)
class SnippetUse:
    snippet_id: str
    sends: int  # how many sends carried it
    last: Carried | None  # the latest of them

    @property
    def ever_sent(self) -> bool:
        return self.last is not None


def snippet_usage(workspace: Workspace, engine: Engine) -> dict[str, SnippetUse]:
    """Per snippet id that any send carried: how often, and the latest send."""
    counts: dict[str, int] = {}
    latest: dict[str, Carried] = {}
    for carried in carried_by_sends(workspace, engine):
        counts[carried.snippet_id] = counts.get(carried.snippet_id, 0) + 1
        latest.setdefault(carried.snippet_id, carried)  # newest send first
    return {sid: SnippetUse(sid, counts[sid], latest[sid]) for sid in counts}


@dataclass(frozen=True)
class SnippetRow:
    """One line of `snippets list`: the snippet and whether, when and to how many it went."""

    snippet: Snippet
    use: SnippetUse

    @property
    def last_sent(self) -> str:
        """For the table: `never`, or `2026-12-02 #1 · 36`, `... · 12 of 40 (sending)`."""
        last = self.use.last
        if last is None:
            return "never"
        head = f"{last.at:%Y-%m-%d} #{last.send_id}"
        if last.status == str(SendStatus.DONE) or last.sent == last.total:
            return f"{head} · {last.sent}"
        return f"{head} · {last.sent} of {last.total} ({last.status})"

    def to_dict(self) -> dict[str, Any]:
        meta = self.snippet.meta.model_dump(mode="json", exclude={"id"})
        last = self.use.last
        return {
            "id": self.snippet.id,
            "file": self.snippet.file,
            **meta,
            "ever_sent": self.use.ever_sent,
            "sends": self.use.sends,
            "last_sent": None if last is None else last.to_dict(),
        }


def snippet_rows(
    workspace: Workspace, engine: Engine | None, tag: str | None = None, *, unused: bool = False
) -> list[SnippetRow]:
    """`snippets list [--tag T] [--unused]`: every snippet (with the tag) and its use;
    `unused`: only those no send ever carried. No engine: no database yet, nothing sent."""
    usage = snippet_usage(workspace, engine) if engine is not None else {}
    rows = [
        SnippetRow(s, usage.get(s.id) or SnippetUse(s.id, 0, None))
        for s in Library(workspace).snippets(tag)
    ]
    return [row for row in rows if not (unused and row.use.ever_sent)]


# -- the check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """Where an issue file lists a snippet, and whether it says `repeat: true`."""

    line: int
    repeat: bool


def listed_snippets(issue: IssueFile) -> dict[str, Listed]:
    """Every snippet id the issue lists (flat or in sections), at its first place; `repeat`
    when any of its entries says `repeat: true`."""
    found: dict[str, Listed] = {}
    for entry in issue.meta.layout.entries:
        before = found.get(entry.id)
        line = before.line if before else entry.line
        found[entry.id] = Listed(line, entry.repeat or bool(before and before.repeat))
    return found


def reuse_findings(
    workspace: Workspace, engine: Engine, issue: Issue, audience: Audience
) -> list[Finding]:
    """A warning for each snippet that already went out, unchanged, in an earlier send (of
    another issue) to more than half of the people this send would reach, naming that
    send. Not for a snippet changed since (its hash differs) or marked `repeat: true`.
    A second send of the same issue is the `--again` gate's business, not this one's."""
    listed = listed_snippets(issue.source)
    current = dict(carried_snippets(issue))
    wanted = {sid for sid in current if not (sid in listed and listed[sid].repeat)}
    if not wanted:
        return []
    earlier = [
        c
        for c in carried_by_sends(workspace, engine, wanted)
        if c.issue_slug != issue.slug
        and c.sent > 0
        and c.content_hash in (None, current[c.snippet_id])
    ]
    if not earlier:
        return []
    at = now()
    reach = audience.conditions(at)
    with reading(engine).connect() as connection:
        size = connection.execute(
            select(func.count()).select_from(subscribers).where(*reach)
        ).scalar_one()
        if size == 0:
            return []
        reached: dict[int, int] = dict(
            connection.execute(
                select(deliveries.c.send_id, func.count())
                .select_from(
                    deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                )
                .where(
                    deliveries.c.send_id.in_(sorted({c.send_id for c in earlier})),
                    deliveries.c.status == SENT,
                    *reach,
                )
                .group_by(deliveries.c.send_id)
            ).all()
        )
    return list(_warnings(issue, listed, earlier, reached, size))


def _warnings(
    issue: Issue,
    listed: dict[str, Listed],
    earlier: list[Carried],
    reached: dict[int, int],
    size: int,
) -> Iterator[Finding]:
    for snippet in issue.snippets:
        over = [
            c
            for c in earlier
            if c.snippet_id == snippet.id and reached.get(c.send_id, 0) * 2 > size
        ]
        if not over:
            continue
        worst = max(over, key=lambda c: (reached[c.send_id], c.send_id))
        got = reached[worst.send_id]
        unchanged = (
            "unchanged"
            if worst.content_hash is not None
            else "(that send predates reuse tracking: its snippets are read from the issue "
            "file, and whether this one changed since is not known)"
        )
        where = listed.get(snippet.id)
        yield Finding(
            Severity.WARNING,
            "snippet-reused",
            f"snippet '{snippet.id}' already went out {unchanged} in send #{worst.send_id} "
            f"({worst.issue_slug}, {worst.at:%Y-%m-%d}) to {got} of the {size} people this "
            f"send would reach ({round(100 * got / size)}%); change it, drop it, or list it "
            f"as `- id: {snippet.id}` with `repeat: true`",
            issue.source.file,
            where.line if where else issue.source.front.line_of("snippets"),
        )
