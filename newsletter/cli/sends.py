"""`newsletter sends ...`: list, show, pause, resume and cancel sends."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import JsonFlag, new_table, open_current_workspace, out, print_json
from newsletter.cli.app import sends_app as group
from newsletter.cli.send import summary
from newsletter.domain.delivery import DeliveryStatus, SendStatus
from newsletter.errors import InputError

SendId = Annotated[
    int, typer.Argument(help="The send's number (see `newsletter sends list`).", metavar="SEND_ID")
]


@group.command("list", epilog="Example: newsletter sends list --json")
def sends_list(as_json: JsonFlag = False) -> None:
    """List sends, newest first."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.ledger import Ledger

    with connect(open_current_workspace().database_url) as engine:
        records = Ledger(engine).list()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = new_table(box=None)  # fits 80 columns: the outcomes fold, nothing else wraps
    for column in ("id", "issue", "status", "transport", "total", "outcomes", "created"):
        table.add_column(
            column,
            no_wrap=column != "outcomes",
            justify="right" if column in ("id", "total") else "left",
        )
    for r in records:
        outcomes = ", ".join(
            f"{r.counts[s]} {s}" for s in ("sent", "failed", "skipped", "uncertain") if r.counts[s]
        )
        table.add_row(
            str(r.id),
            r.issue_slug,
            str(r.status),
            r.transport,
            str(r.total),
            outcomes or "none yet",
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@group.command("show", epilog="Example: newsletter sends show 3 --json")
def sends_show(send_id: SendId, as_json: JsonFlag = False) -> None:
    """One send: counts per outcome, and who is uncertain or failed, with the reason."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.ledger import Ledger

    with connect(open_current_workspace().database_url) as engine:
        ledger = Ledger(engine)
        record = ledger.get(send_id)
        uncertain = ledger.deliveries_in(send_id, DeliveryStatus.UNCERTAIN)
        failed = ledger.deliveries_in(send_id, DeliveryStatus.FAILED)
        retrying = ledger.retrying(send_id)
    if as_json:
        print_json(
            {
                **record.to_dict(),
                "retrying": retrying.__dict__,
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
    summary(record, as_json=False)
    if retrying.count and retrying.next_at is not None:
        out.print(
            Text(
                f"retrying: {retrying.count} recipient(s), next attempt at "
                f"{retrying.next_at:%Y-%m-%d %H:%M:%S} UTC (last error: {retrying.last_error})"
            )
        )
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
    from newsletter.infra.db.engine import connect
    from newsletter.services.ledger import Ledger

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
    from newsletter.infra.db.engine import connect
    from newsletter.services.ledger import Ledger

    with connect(open_current_workspace().database_url) as engine:
        ledger = Ledger(engine)
        current = ledger.status(send_id)
        if not ledger.set_status(send_id, status, reason, only_from=allowed):
            raise InputError(f"send #{send_id} is {current}; cannot make it {status}")
    out.print(f"send #{send_id}: {current} -> {status}")
