"""`newsletter schedule ...`, `newsletter daemon` and `newsletter status`: parse, call the
scheduling services, present."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.text import Text
from typer.core import TyperGroup

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
from newsletter.errors import InputError
from newsletter.infra.redaction import redact

if TYPE_CHECKING:
    from newsletter.infra.workspace import Workspace
    from newsletter.services.scheduling import ScheduleRecord


class _ScheduleGroup(TyperGroup):
    """`schedule ISSUE --at ...` and `schedule --cron ...` mean `schedule add ...`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


group = typer.Typer(
    cls=_ScheduleGroup,
    help="Planned and recurring sends (fired by `newsletter daemon`).",
    epilog='Example: newsletter schedule 2026-12-welcome --at "2027-01-07 09:00" '
    "--tz Europe/London",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(group, name="schedule")


@group.command(
    "add",
    epilog='Examples: newsletter schedule 2026-12-welcome --at "2027-01-07 09:00" | '
    'newsletter schedule --cron "0 9 * * MON" --next-ready --tz Europe/London',
)
def add(
    issue: Annotated[
        str | None, typer.Argument(help="Issue slug or path.", metavar="ISSUE")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help='When: "YYYY-MM-DD HH:MM" in --tz.')
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help='A recurring rule: "0 9 * * MON".')
    ] = None,
    next_ready: Annotated[
        bool,
        typer.Option("--next-ready", help="With --cron: send the oldest ready, unsent issue."),
    ] = False,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Time zone (default: [schedule] timezone).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Followers of this topic, or of none.")
    ] = None,
    transport: Annotated[
        str | None, typer.Option("--transport", help="outbox, smtp or sendgrid.")
    ] = None,
    again: Annotated[bool, typer.Option("--again", help="An issue already sent.")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Move the issue's existing schedule.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Schedule an issue at a time, or a recurring rule."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.scheduling import ScheduleBook
    from newsletter.services.sending import ChecksFailed

    workspace = open_current_workspace()
    if cron is not None:
        if issue is not None or at is not None or not next_ready or again or replace:
            raise InputError("--cron goes with --next-ready (and --tz, --topic, --transport)")
    elif issue is None or at is None:
        raise InputError('give ISSUE --at "YYYY-MM-DD HH:MM", or --cron "..." --next-ready')
    with connect(workspace.database_url) as engine:
        book = ScheduleBook(workspace, engine)
        if cron is not None:
            record = book.schedule_rule(cron, tz=tz, topic=topic, transport=transport)
        else:
            assert issue is not None and at is not None
            if not yes and not as_json:
                confirm(
                    f"Schedule {issue} for {at} ({tz or workspace.settings.schedule.timezone})?",
                    doing="scheduling",
                    undone="scheduled",
                )
            try:
                record = book.schedule_issue(
                    issue, at, tz=tz, topic=topic, transport=transport, again=again, replace=replace
                )
            except ChecksFailed as exc:
                if not as_json:
                    show_findings(exc.findings, err)
                raise
    if as_json:
        print_json(record.to_dict())
        return
    out.print(Text(f"schedule #{record.id}: {record.what}, {_when(record)}"))
    out.print("it fires while `newsletter daemon` runs (or at `newsletter daemon --once`)")


def schedule_from_send(
    issue: str,
    at: str,
    *,
    topic: str | None,
    transport: str | None,
    again: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """`newsletter send ISSUE --at TIME` is `newsletter schedule ISSUE --at TIME`."""
    add(
        issue=issue,
        at=at,
        cron=None,
        next_ready=False,
        tz=None,
        topic=topic,
        transport=transport,
        again=again,
        replace=False,
        yes=yes,
        as_json=as_json,
    )


def _when(record: ScheduleRecord) -> str:
    if record.due_at is None:
        return str(record.state)
    local = record.due_at.astimezone(ZoneInfo(record.timezone))
    mine = record.due_at.astimezone()
    return f"{local:%Y-%m-%d %H:%M} {record.timezone} ({mine:%Y-%m-%d %H:%M %Z} here)"


@group.command("list", epilog="Example: newsletter schedule list --json")
def schedule_list(as_json: JsonFlag = False) -> None:
    """Every schedule: what, when (its zone and here), state, last outcome."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.scheduling import ScheduleBook

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        records = ScheduleBook(workspace, engine).list()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = new_table(box=None)
    for column in ("id", "what", "next due", "state", "last outcome"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(str(r.id), r.what, _when(r), str(r.state), r.outcome or "")
    out.print(table)


@group.command("show", epilog="Example: newsletter schedule show 3 --json")
def schedule_show(
    schedule_id: Annotated[int, typer.Argument(help="The schedule's number.", metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """One schedule, with who changed it last."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.scheduling import ScheduleBook

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        record = ScheduleBook(workspace, engine).get(schedule_id)
    if as_json:
        print_json(record.to_dict())
        return
    for label, value in (
        ("schedule", f"#{record.id}: {record.what}"),
        ("due", _when(record)),
        ("state", str(record.state)),
        ("topic", record.topic or "all"),
        ("transport", record.transport or "the configured one"),
        ("send", f"#{record.send_id}" if record.send_id else "none yet"),
        ("last outcome", record.outcome or ""),
        ("changed", f"{record.updated_at:%Y-%m-%d %H:%M:%S} UTC by {record.changed_by}"),
    ):
        out.print(Text(f"{label:>12}: {value}"))


@group.command("cancel", epilog="Example: newsletter schedule cancel 2026-12-welcome")
def schedule_cancel(
    ref: Annotated[str, typer.Argument(help="Schedule number or issue slug.", metavar="ID|ISSUE")],
) -> None:
    """Cancel a waiting schedule."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.scheduling import ScheduleBook

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        record = ScheduleBook(workspace, engine).cancel(ref)
    out.print(Text(f"schedule #{record.id} ({record.what}) cancelled"))


@app.command(epilog="Example: newsletter daemon --json-logs")
def daemon(
    once: Annotated[
        bool, typer.Option("--once", help="Fire what is due now, finish its sends, exit.")
    ] = False,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="One JSON object per line.")
    ] = False,
) -> None:
    """Fire schedules on time; one active daemon per database, others stand by."""
    from newsletter.infra.db.engine import connect
    from newsletter.infra.signals import graceful_stop
    from newsletter.services.daemon import Daemon

    workspace = open_current_workspace()
    log = _logger(json_logs)
    with connect(workspace.database_url) as engine:
        worker = Daemon(workspace, engine, log)
        with graceful_stop(lambda signum: worker.request_stop()):
            worker.run(once=once)
    log("exited")


def _logger(as_json: bool) -> Any:
    def log(event: str, **fields: Any) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        shown = {k: v for k, v in fields.items() if v is not None}
        if as_json:
            line = json.dumps({"at": at, "event": event, **shown}, default=str)
        else:
            parts = " ".join(f"{k}={_plain(v)}" for k, v in shown.items())
            line = f"{at} {event} {parts}".rstrip()
        sys.stdout.write(redact(line) + "\n")
        sys.stdout.flush()

    return log


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return json.dumps(text) if " " in text or not text else text


@app.command(epilog="Example: newsletter status --json")
def status(as_json: JsonFlag = False) -> None:
    """The daemon, upcoming schedules, and running sends with progress."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.status import status_of

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        report = status_of(workspace, engine)
    if as_json:
        print_json(report)
        return
    _show_status(workspace, report)


def _show_status(workspace: Workspace, report: dict[str, Any]) -> None:
    daemon_info = report["daemon"]
    if daemon_info["state"] == "none":
        out.print("daemon: none running (start `newsletter daemon`)")
    else:
        out.print(
            Text(
                f"daemon: {daemon_info['state']} on {daemon_info['host']} pid {daemon_info['pid']}"
                f", since {daemon_info['since']:%Y-%m-%d %H:%M:%S} UTC, last heartbeat "
                f"{daemon_info['heartbeat']:%H:%M:%S} UTC"
                + (f" ({daemon_info['standby']} standing by)" if daemon_info["standby"] else "")
            )
        )
    upcoming = report["upcoming"]
    out.print(f"upcoming schedules: {len(upcoming)}")
    for item in upcoming[:10]:
        out.print(Text(f"  #{item['id']} {item['what']}: {item['due_at']:%Y-%m-%d %H:%M} UTC"))
    for item in report["missed"]:
        out.print(Text(f"  missed: #{item['id']} {item['what']} ({item['outcome']})"))
    running = report["sends"]
    out.print(f"running sends: {len(running)}")
    for item in running:
        out.print(
            Text(
                f"  send #{item['id']} {item['issue_slug']}: {item['status']}, "
                f"{item['handled']}/{item['total']} handled"
            )
        )
