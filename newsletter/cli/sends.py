"""`newsletter send` and `newsletter sends ...`: parse, call the sending services, present."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from newsletter.cli.app import JsonFlag, app, err, open_current_workspace, out, print_json
from newsletter.cli.app import sends_app as group
from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.errors import ExitStatus, InputError
from newsletter.infra.db.engine import connect
from newsletter.infra.transports.factory import make_transport, transport_settings
from newsletter.infra.workspace import Workspace
from newsletter.services.dispatch import Dispatcher, SendOptions
from newsletter.services.ledger import Ledger, SendRecord
from newsletter.services.links import list_identity, signer
from newsletter.services.sending import (
    build_for_sending,
    create_send,
    dry_run,
    prepare,
    test_send,
)

SendId = Annotated[int, typer.Argument(help="The send's number (see `newsletter sends list`).")]


@app.command(
    epilog="Examples: newsletter send 2026-12-welcome --yes | newsletter send 2026-12-welcome "
    "--to me@example.com | newsletter send --resume 3"
)
def send(
    issue: Annotated[
        str | None, typer.Argument(help="Issue slug or path.", metavar="ISSUE")
    ] = None,
    resume: Annotated[
        int | None,
        typer.Option(
            "--resume",
            help="Work on an existing send (after a crash, a pause, or as an extra worker).",
        ),
    ] = None,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            help="Test send to this address (repeatable): marked [TEST], outside the ledger.",
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Only subscribers following this topic.")
    ] = None,
    transport: Annotated[
        str | None,
        typer.Option("--transport", help="outbox, smtp or sendgrid (default: the configured one)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.01, help="Messages per second.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, max=64, help="Parallel transport calls.")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            max=1000,
            help="Recipients per claim (default: 1000 for sendgrid, else 100).",
        ),
    ] = None,
    resend_uncertain: Annotated[
        bool,
        typer.Option(
            "--resend-uncertain",
            help="With --resume: send again to recipients whose outcome is unknown.",
        ),
    ] = False,
    dry: Annotated[
        bool, typer.Option("--dry-run", help="Everything except the transport.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send an issue to every active subscriber, or resume a send; crash-safe, never twice."""
    workspace = open_current_workspace()
    if (issue is None) == (resume is None):
        raise InputError("give an ISSUE to send, or --resume SEND_ID (not both)")
    if resend_uncertain and resume is None:
        raise InputError("--resend-uncertain goes with --resume SEND_ID")
    if resume is not None and (to or dry or topic):
        raise InputError("--to, --dry-run and --topic start a new send; not with --resume")
    with connect(workspace.database_url) as engine:
        ledger = Ledger(engine)
        if resume is not None:
            record = ledger.get(resume)
            if transport and transport != record.transport:
                raise InputError(f"send #{resume} goes through {record.transport}, not {transport}")
            name = record.transport
            if resend_uncertain:
                count = ledger.resend_uncertain(resume)
                err.print(f"send #{resume}: {count} uncertain recipient(s) queued again")
            _run(workspace, ledger, record, name, rate, concurrency, batch_size, as_json)
            return
        assert issue is not None
        name = transport or workspace.settings.transport
        if to:
            build = build_for_sending(workspace, issue)
            sender = make_transport(workspace, name)
            try:
                outcomes = test_send(workspace, build, sender, to)
            finally:
                sender.close()
            _report_test(outcomes, as_json)
            return
        keys = signer(workspace, allow_generated=name == "outbox")
        if dry:
            build = build_for_sending(workspace, issue)
            counts = dry_run(
                workspace, engine, build, list_identity(workspace.settings), keys, topic
            )
            if as_json:
                print_json({"dry_run": True, "issue": build.issue.slug, "outcomes": counts})
            else:
                for outcome, n in counts.items():
                    out.print(f"{outcome}: {n}")
                out.print("dry run: nothing was sent")
            return
        prepared = prepare(workspace, engine, issue, topic)
        if prepared.audience == 0:
            raise InputError("no active subscribers" + (f" follow '{topic}'" if topic else ""))
        subject = prepared.build.rendered.subject
        if not yes:
            if not sys.stdin.isatty():
                raise InputError("sending needs --yes when not run interactively")
            typer.confirm(
                f"Send “{subject}” to {prepared.audience} subscriber(s) via {name}?", abort=True
            )
        make_transport(workspace, name).close()  # a misconfigured transport fails here
        record = create_send(ledger, prepared, name, topic)
        err.print(f"send #{record.id}: {record.total} recipient(s), via {name}")
        _run(workspace, ledger, record, name, rate, concurrency, batch_size, as_json)


def _run(
    workspace: Workspace,
    ledger: Ledger,
    record: SendRecord,
    name: str,
    rate: float | None,
    concurrency: int | None,
    batch_size: int | None,
    as_json: bool,
) -> None:
    configured = transport_settings(workspace, name)
    options = SendOptions(
        batch_size=batch_size or (1000 if name == "sendgrid" else 100),
        concurrency=concurrency or configured.concurrency,
        rate=rate or configured.rate,
    )
    keys = signer(workspace, allow_generated=name == "outbox")
    done_before = sum(record.counts[s] for s in ("sent", "failed", "skipped", "uncertain"))
    with Progress(
        TextColumn(f"send #{record.id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as progress:
        task = progress.add_task("send", total=record.total, completed=done_before, rate="")

        def advance(handled: int) -> None:
            progress.advance(task, handled)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        dispatcher = Dispatcher(
            ledger,
            make_transport(workspace, name),
            list_identity(workspace.settings),
            keys,
            options,
            advance,
        )
        final = dispatcher.run(record.id)
    _summary(final, as_json)
    if final.status != SendStatus.DONE:
        raise typer.Exit(ExitStatus.SEND_INCOMPLETE)


def _summary(record: SendRecord, as_json: bool) -> None:
    if as_json:
        print_json(record.to_dict())
        return
    table = Table(title=f"send #{record.id}: {record.status}", box=None, title_justify="left")
    table.add_column("outcome")
    table.add_column("recipients", justify="right")
    for status, count in record.counts.items():
        if count:
            table.add_row(status, str(count))
    table.add_row("total", str(record.total))
    out.print(table)
    if record.status_reason:
        out.print(Text(f"reason: {record.status_reason}"))
    if record.status == SendStatus.PAUSED:
        out.print(
            f"resume with: newsletter sends resume {record.id} && "
            f"newsletter send --resume {record.id}"
        )
    if record.counts.get("uncertain"):
        out.print(
            f"{record.counts['uncertain']} uncertain: see `newsletter sends show "
            f"{record.id}`; resend with `newsletter send --resume {record.id} "
            "--resend-uncertain`"
        )


def _report_test(outcomes: list, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        print_json([o.__dict__ for o in outcomes])
        return
    for outcome in outcomes:
        out.print(
            Text(
                f"{outcome.key}: {outcome.result}"
                + (f" ({outcome.error})" if outcome.error else "")
            )
        )
    if any(o.result != "sent" for o in outcomes):
        raise typer.Exit(ExitStatus.SEND_INCOMPLETE)


@group.command("list", epilog="Example: newsletter sends list --json")
def sends_list(as_json: JsonFlag = False) -> None:
    """List sends, newest first."""
    with connect(open_current_workspace().database_url) as engine:
        records = Ledger(engine).list()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = Table(box=None)
    for column in (
        "id",
        "issue",
        "status",
        "transport",
        "total",
        "sent",
        "failed",
        "skipped",
        "uncertain",
        "created",
    ):
        table.add_column(column, no_wrap=column in ("id", "issue", "created"))
    for r in records:
        table.add_row(
            str(r.id),
            r.issue_slug,
            str(r.status),
            r.transport,
            str(r.total),
            *(str(r.counts[s]) for s in ("sent", "failed", "skipped", "uncertain")),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@group.command("show", epilog="Example: newsletter sends show 3 --json")
def sends_show(send_id: SendId, as_json: JsonFlag = False) -> None:
    """One send: counts per outcome, and who is uncertain or failed, with the reason."""
    with connect(open_current_workspace().database_url) as engine:
        ledger = Ledger(engine)
        record = ledger.get(send_id)
        uncertain = ledger.deliveries_in(send_id, DeliveryStatus.UNCERTAIN)
        failed = ledger.deliveries_in(send_id, DeliveryStatus.FAILED)
    if as_json:
        print_json(
            {
                **record.to_dict(),
                "uncertain": [
                    {"subscriber_id": i, "email": e, "error": m} for i, e, m in uncertain
                ],
                "failed": [{"subscriber_id": i, "email": e, "error": m} for i, e, m in failed],
            }
        )
        return
    out.print(Text(f"send #{record.id}: {record.issue_slug} ({record.subject})"))
    out.print(
        f"content hash {record.content_hash[:16]}, via {record.transport}"
        + (f", topic {record.topic}" if record.topic else "")
    )
    _summary(record, as_json=False)
    for label, rows in (("uncertain", uncertain), ("failed", failed)):
        if rows:
            out.print(f"{label}:")
            for subscriber_id, email, error in rows:
                out.print(Text(f"  #{subscriber_id} {email}: {error}"))


@group.command("pause", epilog="Example: newsletter sends pause 3")
def sends_pause(send_id: SendId) -> None:
    """Pause a send: workers stop after their current batch."""
    _set(send_id, SendStatus.PAUSED, (SendStatus.QUEUED, SendStatus.SENDING), "paused by hand")


@group.command("resume", epilog="Example: newsletter sends resume 3")
def sends_resume(send_id: SendId) -> None:
    """Allow a paused send to continue (then run `newsletter send --resume ID`)."""
    _set(send_id, SendStatus.QUEUED, (SendStatus.PAUSED,), None)
    out.print(f"continue with: newsletter send --resume {send_id}")


@group.command("cancel", epilog="Example: newsletter sends cancel 3")
def sends_cancel(send_id: SendId) -> None:
    """Cancel a send: whoever has not been sent to yet is skipped."""
    with connect(open_current_workspace().database_url) as engine:
        ledger = Ledger(engine)
        status = ledger.status(send_id)
        if status in (SendStatus.DONE, SendStatus.CANCELLED):
            raise InputError(f"send #{send_id} is already {status}")
        skipped = ledger.cancel(send_id)
    out.print(f"send #{send_id} cancelled; {skipped} recipient(s) skipped")


def _set(
    send_id: int, status: SendStatus, allowed: tuple[SendStatus, ...], reason: str | None
) -> None:
    with connect(open_current_workspace().database_url) as engine:
        ledger = Ledger(engine)
        current = ledger.status(send_id)
        if not ledger.set_status(send_id, status, reason, only_from=allowed):
            raise InputError(f"send #{send_id} is {current}; cannot make it {status}")
    out.print(f"send #{send_id}: {current} -> {status}")
