"""`newsletter suppressions`: SendGrid's suppression lists and ours, kept in step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from newsletter.cli.app import JsonFlag, app, new_table, open_current_workspace, out, print_json

if TYPE_CHECKING:
    from newsletter.services.suppressions import SyncReport

group = typer.Typer(
    help="SendGrid's suppression lists (bounces, spam reports, unsubscribes) and ours.",
    epilog="Example: newsletter suppressions sync --since 2026-11-01",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(group, name="suppressions")


@group.command(
    "sync",
    epilog="Examples: newsletter suppressions sync | "
    "newsletter suppressions sync --since 2026-11-01 --push --json",
)
def sync_command(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Only entries SendGrid listed on or after this day (YYYY-MM-DD, UTC); "
            "default: everything. The group's list is always read whole.",
        ),
    ] = None,
    push: Annotated[
        bool,
        typer.Option(
            "--push",
            help="Also add our unsubscribed and complained addresses to the unsubscribe "
            "group ([sendgrid] asm_group_id).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pull SendGrid's suppression lists and apply them (never re-activating anyone)."""
    from newsletter.infra.db.engine import connect
    from newsletter.infra.sendgrid_api import SuppressionsApi
    from newsletter.services.suppressions import parse_since, sync

    day = parse_since(since)
    workspace = open_current_workspace()
    settings = workspace.settings.sendgrid
    api = SuppressionsApi.from_settings(settings)
    with connect(workspace.database_url) as engine:
        report = sync(engine, api, group_id=settings.asm_group_id, since=day, push=push)
    if as_json:
        print_json(report.to_dict())
        return
    _show(report)


def _show(report: SyncReport) -> None:
    scope = f"since {report.since:%Y-%m-%d} (UTC)" if report.since else "everything"
    out.print(Text(f"SendGrid suppression lists, {scope}:"))
    table = new_table(box=None)
    for column in ("list", "pulled", "on our list", "new", "changed", "makes them"):
        table.add_column(column, justify="left" if column in ("list", "makes them") else "right")
    for k in report.kinds:
        table.add_row(k.label, str(k.pulled), str(k.on_list), str(k.new), str(k.changed), k.status)
    out.print(table)
    if report.group_id is None:
        out.print(Text("group unsubscribes: not read ([sendgrid] asm_group_id is not set)"))
    elif report.since is not None:
        out.print(Text(f"group {report.group_id}: read whole (SendGrid cannot filter it by date)"))
    out.print(Text(f"{report.changed} subscriber status change(s); never back to active"))
    if report.push is not None:
        p = report.push
        out.print(
            Text(
                f"pushed {p.pushed} unsubscribed/complained address(es) to group {p.group_id}"
                f" ({p.already} of our {p.ours} were already there)"
            )
        )
