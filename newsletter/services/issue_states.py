"""Every issue at a glance (`issues list`): its file status, whether it is scheduled or was
sent (when, to how many, how many delivered), and what its checks say today."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from newsletter.domain.checks import Severity
from newsletter.errors import InputError
from newsletter.infra.workspace import Workspace
from newsletter.services.build import Builder
from newsletter.services.ledger import Ledger
from newsletter.services.library import Library
from newsletter.services.scheduling import ScheduleBook
from newsletter.services.stats import send_stats


@dataclass(frozen=True)
class IssueState:
    slug: str
    file: str
    date: date
    status: str  # the file's: draft, ready, published
    subject: str
    snippets: list[str]
    check: str  # ok, warnings, errors
    errors: int
    warnings: int
    scheduled_at: datetime | None = None
    schedule_id: int | None = None
    send_id: int | None = None
    sent_at: datetime | None = None
    sent: int = 0
    delivered: int = 0
    problem: str | None = None  # the first error, when there is one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def issue_states(workspace: Workspace, engine: Engine) -> list[IssueState]:
    builder = Builder(workspace)
    ledger = Ledger(engine)
    waiting: dict[str, tuple[datetime, int]] = {}
    for record in ScheduleBook(workspace, engine).list(waiting_only=True):
        if record.issue_slug and record.due_at:
            known = waiting.get(record.issue_slug)
            if known is None or record.due_at < known[0]:
                waiting[record.issue_slug] = (record.due_at, record.id)
    states = []
    for issue in Library(workspace).issues():
        try:
            findings = builder.build(issue.slug).findings
            errors = [f for f in findings if f.severity == Severity.ERROR]
            warnings = len(findings) - len(errors)
            problem = f"{errors[0].where}: {errors[0].message}" if errors else None
        except InputError as exc:  # the issue or a snippet cannot even be read
            errors, warnings, problem = [exc], 0, str(exc)
        check = "errors" if errors else "warnings" if warnings else "ok"
        sent = ledger.earlier_send(issue.slug)
        stats = send_stats(engine, sent.id) if sent else None
        due = waiting.get(issue.slug)
        states.append(
            IssueState(
                slug=issue.slug,
                file=issue.file,
                date=issue.meta.date,
                status=issue.meta.status,
                subject=issue.meta.subject,
                snippets=list(issue.meta.snippets),
                check=check,
                errors=len(errors),
                warnings=warnings,
                scheduled_at=due[0] if due else None,
                schedule_id=due[1] if due else None,
                send_id=sent.id if sent else None,
                sent_at=sent.created_at if sent else None,
                sent=stats.sent if stats else 0,
                delivered=stats.delivered if stats else 0,
                problem=problem,
            )
        )
    return states
