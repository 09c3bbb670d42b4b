"""`newsletter send`: parse, call the sending services, present (the progress bar, the
summary, the exit status)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from newsletter.cli.app import (
    JsonFlag,
    app,
    confirm,
    err,
    new_table,
    open_current_workspace,
    out,
    print_json,
)
from newsletter.cli.content import show_findings
from newsletter.cli.schedule import schedule_from_send
from newsletter.domain.delivery import SendStatus
from newsletter.errors import ExitStatus, InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from newsletter.domain.tokens import Signer
    from newsletter.infra.workspace import Workspace
    from newsletter.services.ledger import AlreadySent, Ledger, SendRecord
    from newsletter.services.sending import SendPlan, TestOutcome


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
            help="Test send to these addresses (repeatable or comma-separated): marked "
            "[TEST], outside the ledger.",
            metavar="EMAIL",
        ),
    ] = None,
    test: Annotated[
        bool,
        typer.Option("--test", help="Test send to the [test] recipients of newsletter.toml."),
    ] = False,
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="Subscribers following this topic, or following none."),
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
    resend_uncertain_: Annotated[
        bool,
        typer.Option(
            "--resend-uncertain",
            help="With --resume: send again to recipients whose outcome is unknown.",
        ),
    ] = False,
    again: Annotated[
        bool, typer.Option("--again", help="Send an issue that was already sent.")
    ] = False,
    if_unsent: Annotated[
        bool,
        typer.Option(
            "--if-unsent", help="If the issue was already sent, say so and exit 0 (for scripts)."
        ),
    ] = False,
    allow_draft: Annotated[
        bool, typer.Option("--allow-draft", help="Send an issue marked `status: draft`.")
    ] = False,
    dry: Annotated[
        bool, typer.Option("--dry-run", help="Everything except the transport.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option("--at", help='Schedule it instead: "YYYY-MM-DD HH:MM" (see `schedule`).'),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send an issue to every active subscriber once, or resume a send; crash-safe."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.keys import signing_key_warning
    from newsletter.services.ledger import AlreadySent, Ledger
    from newsletter.services.links import signer
    from newsletter.services.sending import (
        ChecksFailed,
        plan_send,
        resend_uncertain,
        send_test_messages,
        start_send,
        test_recipients,
    )

    workspace = open_current_workspace()
    if (issue is None) == (resume is None):
        raise InputError("give an ISSUE to send, or --resume SEND_ID (not both)")
    if resend_uncertain_ and resume is None:
        raise InputError("--resend-uncertain goes with --resume SEND_ID")
    if resume is not None and (to or test or dry or topic or again or allow_draft):
        raise InputError(
            "--to, --test, --dry-run, --topic, --again and --allow-draft start a new send; "
            "not with --resume"
        )
    if at is not None:
        if issue is None or to or test or dry or resume is not None:
            raise InputError(
                "--at schedules an ISSUE; not with --to, --test, --dry-run or --resume"
            )
        schedule_from_send(
            issue, at, topic=topic, transport=transport, again=again, yes=yes, as_json=as_json
        )
        return
    with connect(workspace.database_url) as engine:
        ledger = Ledger(engine)
        if resume is not None:
            record = ledger.get(resume)
            if transport and transport != record.transport:
                raise InputError(f"send #{resume} goes through {record.transport}, not {transport}")
            if resend_uncertain_:
                requeued = resend_uncertain(workspace, ledger, resume)
                err.print(
                    f"send #{resume}: {requeued.count} uncertain recipient(s) queued again"
                    + (
                        f", {requeued.from_recovery} of them from the crash just recovered"
                        if requeued.from_recovery
                        else ""
                    )
                )
                record = ledger.get(resume)
            _run(workspace, ledger, record, rate, concurrency, batch_size, as_json)
            return
        assert issue is not None
        if to or test:
            addresses = test_recipients(workspace, to or [], test)
            _report_test(send_test_messages(workspace, issue, transport, addresses), as_json)
            return
        try:
            plan = plan_send(
                workspace,
                engine,
                issue,
                topic=topic,
                transport=transport,
                again=again or dry,
                allow_draft=allow_draft,
            )
        except ChecksFailed as exc:
            if not as_json:
                show_findings(exc.findings, err)
            raise
        except AlreadySent as exc:
            if not if_unsent:
                raise
            _already_sent(workspace, exc, as_json)
            return
        if not as_json and plan.warnings:
            show_findings(plan.warnings, err)
        keys = signer(workspace, allow_generated=plan.transport == "outbox")
        if (warning := signing_key_warning(engine, keys)) and not as_json:
            err.print(Text(f"warning: {warning}"), style="yellow")
        if dry:
            _dry_run(workspace, engine, plan, keys, as_json)
            return
        if not yes:
            _confirm(plan)
        record = start_send(workspace, ledger, plan, again=again)
        err.print(f"send #{record.id}: {record.total} recipient(s), via {record.transport}")
        _run(workspace, ledger, record, rate, concurrency, batch_size, as_json)


def _confirm(plan: SendPlan) -> None:
    if plan.earlier is not None and sys.stdin.isatty():
        e = plan.earlier
        err.print(
            f"[yellow]{plan.build.issue.slug} was already sent:[/yellow] send #{e.id} on "
            f"{e.created_at:%Y-%m-%d %H:%M} UTC to {e.total} recipient(s); this sends it again."
        )
    who = plan.audience.describe()
    question = (
        f"Send “{plan.build.rendered.subject}” to {plan.size} subscriber(s)"
        + (f" ({who})" if plan.audience.topic else "")
        + f" via {plan.transport}"
        + (" AGAIN" if plan.earlier else "")
        + "?"
    )
    confirm(question, doing="sending", undone="sent")


def _already_sent(workspace: Workspace, exc: AlreadySent, as_json: bool) -> None:
    from newsletter.services.sending import outbox_folder

    earlier = exc.earlier
    folder = outbox_folder(workspace, earlier.id) if earlier.transport == "outbox" else None
    if as_json:
        print_json({"already_sent": earlier.to_dict(), "outbox": str(folder) if folder else None})
        return
    out.print(Text(str(exc).split("; add --again")[0]))
    if folder is not None:
        out.print(Text(f"messages are in {folder}/"))


def _dry_run(
    workspace: Workspace, engine: Engine, plan: SendPlan, keys: Signer, as_json: bool
) -> None:
    from newsletter.services.links import list_identity
    from newsletter.services.sending import dry_run

    counts = dry_run(
        workspace,
        engine,
        plan.build,
        list_identity(workspace.settings),
        keys,
        plan.audience,
    )
    if as_json:
        print_json(
            {
                "dry_run": True,
                "issue": plan.build.issue.slug,
                "audience": plan.size,
                "topic": plan.audience.topic,
                "already_sent": plan.earlier.to_dict() if plan.earlier else None,
                "outcomes": counts,
            }
        )
        return
    for outcome, n in counts.items():
        out.print(f"{outcome}: {n}")
    if plan.earlier is not None:
        earlier = plan.earlier.id
        out.print(Text(f"note: already sent as send #{earlier} (a real send needs --again)"))
    out.print("dry run: nothing was sent")


def _run(
    workspace: Workspace,
    ledger: Ledger,
    record: SendRecord,
    rate: float | None,
    concurrency: int | None,
    batch_size: int | None,
    as_json: bool,
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from newsletter.infra.signals import graceful_stop
    from newsletter.services.sending import dispatcher_for, options_for

    options = options_for(
        workspace, record.transport, rate=rate, concurrency=concurrency, batch_size=batch_size
    )
    done_before = sum(record.counts[s] for s in ("sent", "failed", "skipped", "uncertain"))
    with Progress(
        TextColumn(f"send #{record.id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as progress:
        task = progress.add_task("send", total=record.total, completed=done_before, note="")
        said: dict[str, float] = {}

        def handled(count: int) -> None:
            progress.advance(task, count)
            speed = progress.tasks[0].speed
            progress.update(task, note=f"{speed:,.0f}/s" if speed else "")

        def waiting(seconds: float, reason: str) -> None:
            note = f"retrying in {seconds:.0f} s: {reason}"
            progress.update(task, note=note)
            # Without a terminal the bar is not drawn: say it in a line, now and then.
            if (
                not err.is_terminal
                and not as_json
                and time.monotonic() - said.get(reason, -60.0) >= 60.0
            ):
                said[reason] = time.monotonic()
                err.print(Text(f"send #{record.id}: {note}"))

        dispatcher = dispatcher_for(
            workspace, ledger, record, options, on_handled=handled, on_waiting=waiting
        )

        def stop(signum: int) -> None:
            progress.update(task, note="stopping: finishing the messages under way")
            dispatcher.request_stop()

        with graceful_stop(stop):
            final = dispatcher.run(record.id)
    summary(final, as_json)
    if dispatcher.interrupted:
        left = final.counts["queued"] + final.counts["claimed"]
        err.print(
            f"send #{final.id} stopped; {left} recipient(s) left: "
            f"continue with `newsletter send --resume {final.id}`"
        )
        raise typer.Exit(ExitStatus.SEND_INCOMPLETE)
    if final.status != SendStatus.DONE:
        if final.status == SendStatus.PAUSED and final.status_reason:
            err.print(Text(f"send #{final.id} paused: {final.status_reason}"))
        raise typer.Exit(ExitStatus.SEND_INCOMPLETE)


def summary(record: SendRecord, as_json: bool) -> None:
    """The counts per outcome, and what to do next (shared with `sends show`)."""
    if as_json:
        print_json(record.to_dict())
        return
    table = new_table(title=f"send #{record.id}: {record.status}", box=None, title_justify="left")
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


def _report_test(outcomes: list[TestOutcome], as_json: bool) -> None:
    if as_json:
        print_json([o.__dict__ for o in outcomes])
    else:
        for outcome in outcomes:
            out.print(
                Text(
                    f"{outcome.address}: {outcome.result}"
                    + (f" ({outcome.error})" if outcome.error else "")
                    + (f" -> {outcome.path}" if outcome.path else "")
                )
            )
    if any(o.result != "sent" for o in outcomes):
        raise typer.Exit(ExitStatus.SEND_INCOMPLETE)
