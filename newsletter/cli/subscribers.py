"""Subscriber commands and `db upgrade`: parse, call the store, present."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from newsletter.cli.app import (
    JsonFlag,
    confirm,
    db_app,
    err,
    new_table,
    open_current_workspace,
    out,
    print_json,
    subscribers_app,
)

if TYPE_CHECKING:
    from newsletter.domain.subscriber import Status, SubscriberRecord
    from newsletter.infra.settings import Settings
    from newsletter.services.importer import ImportReport
    from newsletter.services.subscribers import Context, SubscriberStore


# The values of newsletter.domain.subscriber.Status, spelt out here: that module loads
# email-validator, which `--help` does without (tests/test_help.py checks they agree).
class StatusName(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class NewStatus(StrEnum):
    """All a new subscriber may start as (`add`, `import`)."""

    ACTIVE = "active"
    PENDING = "pending"


EmailArg = Annotated[str, typer.Argument(help="The subscriber's email address.", metavar="EMAIL")]
StatusOpt = Annotated[
    list[StatusName] | None,
    typer.Option("--status", "-s", help="Only this status (repeatable)."),
]
TopicOpt = Annotated[str | None, typer.Option("--topic", "-t", help="Only those following it.")]


def _cli() -> Context:
    """What the consent record says caused a change made here."""
    from newsletter.domain.subscriber import Source
    from newsletter.services.subscribers import Context

    return Context(Source.CLI)


def _statuses(names: list[StatusName] | None) -> list[Status]:
    from newsletter.domain.subscriber import Status

    return [Status(name) for name in names or []]


@contextmanager
def _store() -> Iterator[SubscriberStore]:
    from newsletter.infra.db.engine import connect
    from newsletter.services.subscribers import SubscriberStore

    with connect(open_current_workspace().database_url) as engine:
        yield SubscriberStore(engine)


def _labels(topics: list[str], settings: Settings) -> str:
    """Topics as readers see them (`[topics]` labels); --json keeps the tags."""
    return ", ".join(settings.topic_label(tag) for tag in topics)


def _row(record: SubscriberRecord, settings: Settings) -> list[Text]:
    """Cells as plain Text: names and addresses are never read as console markup."""
    return [
        Text(value)
        for value in (
            str(record.id),
            record.email or "(erased)",
            record.name or "",
            str(record.status),
            _labels(record.topics, settings),
            record.created_at.strftime("%Y-%m-%d") if record.created_at else "",
        )
    ]


@db_app.command("upgrade", epilog="Example: newsletter db upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (other commands also do this themselves)."""
    from newsletter.infra.db.engine import make_engine, upgrade

    engine = make_engine(open_current_workspace().database_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    out.print(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@subscribers_app.command(
    "add",
    epilog="Example: newsletter subscribers add ada@example.com "
    "--name 'Ada Lovelace' --topic evidence",
)
def add(
    email: EmailArg,
    name: Annotated[str | None, typer.Option("--name", help="Full name.")] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="A topic to follow (repeatable).")
    ] = None,
    status: Annotated[
        NewStatus, typer.Option("--status", help="How they start.")
    ] = NewStatus.ACTIVE,
    as_json: JsonFlag = False,
) -> None:
    """Add one subscriber."""
    from newsletter.domain.subscriber import Status

    with _store() as store:
        record = store.add(
            email, name=name, topics=topic or [], status=Status(status), context=_cli()
        )
    if as_json:
        print_json(record.to_dict())
    else:
        out.print(f"added {record.email} ({record.status}, #{record.id})")


@subscribers_app.command(
    "import", epilog="Example: newsletter subscribers import subscribers/sample.csv --dry-run"
)
def import_file(
    file: Annotated[
        Path, typer.Argument(help="CSV file with a header row.", dir_okay=False, metavar="FILE")
    ],
    status: Annotated[
        NewStatus, typer.Option("--status", help="How new addresses start.")
    ] = NewStatus.ACTIVE,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import subscribers from CSV; the whole file or nothing. Never reactivates an opt-out."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from newsletter.domain.subscriber import Status
    from newsletter.services.importer import import_csv

    size = file.stat().st_size if file.is_file() else 0
    with (
        _store() as store,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=as_json or size < 1_000_000,
        ) as progress,
    ):
        task = progress.add_task(f"importing {file.name}", total=size)
        report = import_csv(
            store.engine,
            file,
            status=Status(status),
            dry_run=dry_run,
            progress=lambda n: progress.advance(task, n),
        )
    if as_json:
        print_json(report.to_dict())
    else:
        _show_report(report)


def _show_report(report: ImportReport) -> None:
    out.print(f"{'dry run: ' if report.dry_run else ''}{report.file}: {report.rows} rows")
    table = new_table(box=None)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for label in ("added", "updated", "unchanged", "skipped", "invalid"):
        table.add_row(label, str(getattr(report, label)))
    for reason, count in report.skipped_reasons.most_common():
        table.add_row(f"  skipped: {reason}", str(count))
    out.print(table)
    for problem in report.problems:
        out.print(
            f"row {problem.row} (line {problem.line}): {problem.email}: {problem.reason}",
            markup=False,
        )
    if report.dry_run:
        out.print("nothing was changed (dry run)")


@subscribers_app.command(
    "export", epilog="Example: newsletter subscribers export active.csv --status active"
)
def export(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Output CSV (default: standard output).", dir_okay=False, metavar="FILE"
        ),
    ] = None,
    status: StatusOpt = None,
    topic: TopicOpt = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Cells as stored: no apostrophe before =, +, -, @ (for programs)."
        ),
    ] = False,
) -> None:
    """Export subscribers as CSV, streaming (erased people are not exported); cells a
    spreadsheet would run as formulas get a leading apostrophe unless --raw."""
    from newsletter.services.exporter import export_to_file, write_csv

    with _store() as store:
        records = store.iterate(_statuses(status), topic)
        if file is None:
            write_csv(sys.stdout, records, raw=raw)
            return
        count = export_to_file(records, file, raw=raw)
    err.print(f"exported {count} subscriber(s) to {file}")


@subscribers_app.command(
    "list", epilog="Example: newsletter subscribers list --status active --page 2"
)
def list_subscribers(
    status: StatusOpt = None,
    topic: TopicOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Per page.")] = 50,
    page: Annotated[int, typer.Option("--page", min=1, help="Page number.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """List subscribers, a page at a time."""
    with _store() as store:
        records = store.list(_statuses(status), topic, limit=limit, offset=(page - 1) * limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = new_table(box=None)
    for column in ("id", "email", "name", "status", "topics", "since"):
        table.add_column(column, no_wrap=column in ("id", "email"))
    settings = open_current_workspace().settings
    for record in records:
        table.add_row(*_row(record, settings))
    out.print(table)
    more = f"; next: --page {page + 1}" if len(records) == limit else ""
    out.print(f"page {page}: {len(records)} subscriber(s){more}")


@subscribers_app.command("show", epilog="Example: newsletter subscribers show ada@example.com")
def show(email: EmailArg, as_json: JsonFlag = False) -> None:
    """Show one subscriber and their consent record (every change of status)."""
    with _store() as store:
        record = store.get(email)
        events = store.events(record.id)
    if as_json:
        print_json({**record.to_dict(), "events": [e.to_dict() for e in events]})
        return
    out.print(f"{record.email}  #{record.id}  {record.status}", markup=False)
    for label, value in (
        ("name", record.name),
        ("topics", _labels(record.topics, open_current_workspace().settings)),
        ("attributes", record.attributes and json.dumps(record.attributes, ensure_ascii=False)),
        ("created", record.created_at),
        ("confirmed", record.confirmed_at),
        ("unsubscribed", record.unsubscribed_at),
        ("paused until", record.paused_until),
    ):
        if value:
            out.print(f"  {label}: {value}", markup=False)
    out.print("consent record:")
    for event in events:
        change = f"{event.old_status or '-'} -> {event.new_status}" if event.new_status else ""
        parts = [
            event.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            event.kind,
            change,
            event.source,
            event.detail or "",
            event.ip and f"ip {event.ip}",
            event.user_agent and f"agent {event.user_agent!r}",
        ]
        out.print("  " + "  ".join(p for p in parts if p), markup=False)


@subscribers_app.command(
    "unsubscribe", epilog="Example: newsletter subscribers unsubscribe ada@example.com"
)
def unsubscribe(email: EmailArg) -> None:
    """Unsubscribe someone now (recorded with source cli)."""
    with _store() as store:
        record, changed = store.unsubscribe(store.get(email).id, _cli())
    out.print(f"{record.email}: {'unsubscribed' if changed else f'already {record.status}'}")


@subscribers_app.command(
    "resubscribe",
    epilog="Example: newsletter subscribers resubscribe "
    "ada@example.com --reason 'asked by email on 2026-11-20'",
)
def resubscribe(
    email: EmailArg,
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the consent record.")],
) -> None:
    """Make an unsubscribed, bounced or complained subscriber active again, with a reason."""
    with _store() as store:
        record, changed = store.resubscribe(store.get(email).id, reason, _cli())
    out.print(f"{record.email}: {'active again' if changed else f'already {record.status}'}")


@subscribers_app.command(
    "erase", epilog="Example: newsletter subscribers erase ada@example.com --yes"
)
def erase(
    email: EmailArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """GDPR erasure: delete personal data; a salted hash keeps the address suppressed."""
    if not yes:
        confirm(f"Erase {email} for good?", doing="erase", undone="erased")
    from newsletter.domain.personalize import delivery_key
    from newsletter.infra.transports.outbox import forget

    workspace = open_current_workspace()
    with _store() as store:
        record = store.erase(email, _cli())
    files = forget(workspace.state_dir / "outbox", delivery_key(record.id), email)
    out.print(
        f"erased subscriber #{record.id}; the address stays suppressed"
        + (f"; {files} outbox message(s) deleted" if files else "")
    )


@subscribers_app.command("count", epilog="Example: newsletter subscribers count --json")
def count(topic: TopicOpt = None, as_json: JsonFlag = False) -> None:
    """Count subscribers by status."""
    with _store() as store:
        counts = store.count(topic)
    if as_json:
        print_json({**counts, "total": sum(counts.values())})
        return
    for status, n in counts.items():
        out.print(f"{status:>13}  {n}")
    out.print(f"{'total':>13}  {sum(counts.values())}")
