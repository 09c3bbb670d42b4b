"""`newsletter stats`: how sends did. Parse, call the statistics service, present."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from newsletter.cli.app import JsonFlag, app, new_table, open_current_workspace, out, print_json

if TYPE_CHECKING:
    from newsletter.services.stats import SendStats


@app.command(epilog="Examples: newsletter stats | newsletter stats 3 --json")
def stats(
    send_id: Annotated[
        int | None,
        typer.Argument(help="One send (default: a table of recent sends).", metavar="SEND_ID"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per send: outcomes, deliveries, bounces, complaints, unsubscribes, opens, clicks."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.stats import recent_stats, send_stats

    with connect(open_current_workspace().database_url) as engine:
        found = [send_stats(engine, send_id)] if send_id is not None else recent_stats(engine)
    if as_json:
        print_json(found[0].to_dict() if send_id is not None else [s.to_dict() for s in found])
        return
    if send_id is not None:
        _one(found[0])
        return
    table = new_table(box=None)  # fits 80 columns: counts with their rate, "4 50%"
    for column in (
        "id",
        "issue",
        "sent",
        "deliv.",
        "bounce",
        "compl.",
        "unsub.",
        "opens",
        "clicks",
    ):
        table.add_column(column, justify="left" if column == "issue" else "right", no_wrap=True)
    for s in found:
        table.add_row(
            str(s.id),
            s.issue_slug,
            str(s.sent),
            str(s.delivered),
            *(
                f"{n} {s.rate(n):.0%}"
                for n in (s.bounced, s.complained, sum(s.unsubscribed.values()), s.opens, s.clicks)
            ),
        )
    out.print(table)


def _pct(s: SendStats, count: int) -> str:
    return f"{count} ({s.rate(count):.1%})"


def _one(s: SendStats) -> None:
    out.print(Text(f"send #{s.id}: {s.issue_slug}, {s.created_at:%Y-%m-%d %H:%M} UTC"))
    rows = [
        ("recipients", str(s.recipients)),
        (
            "sent / failed / skipped / uncertain",
            f"{s.sent} / {s.failed} / {s.skipped} / {s.uncertain}",
        ),
        (
            "delivered",
            f"{s.delivered}" + ("" if s.delivered_reported else " (taken by the server)"),
        ),
        ("bounced", _pct(s, s.bounced)),
        ("complained", _pct(s, s.complained)),
        (
            "unsubscribed",
            _pct(s, sum(s.unsubscribed.values()))
            + "".join(f", {path} {n}" for path, n in sorted(s.unsubscribed.items())),
        ),
        ("unique opens", _pct(s, s.opens) + f" (+{s.machine_opens} machine opens)"),
        ("unique clicks", _pct(s, s.clicks)),
    ]
    for label, value in rows:
        out.print(Text(f"{label:>36}: {value}"))
    for url, n in s.top_links:
        out.print(Text(f"{'':>36}  {n} x {url}"))
