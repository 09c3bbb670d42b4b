"""`newsletter inbound`: one mail on standard input (a Postfix pipe, procmail), or a whole
mbox, classified and applied. Parse, call the inbound service, present."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import JsonFlag, app, err, open_current_workspace, print_json
from newsletter.errors import ExitStatus, NewsletterError


@app.command(epilog="Examples: newsletter inbound < bounce.eml | newsletter inbound --mbox FILE")
def inbound(
    mbox: Annotated[
        Path | None,
        typer.Option(
            "--mbox", help="Read every mail of an mbox file.", exists=True, metavar="FILE"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply bounces (RFC 3464), complaints (ARF) and mailto unsubscribes; ignore the rest.

    Exit 75 when the database cannot be reached: a mail system piping into this command
    (Postfix, procmail) keeps the mail and tries again later, where 69 would bounce it."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.inbound import apply, messages_in
    from newsletter.services.links import signer

    workspace = open_current_workspace()
    keys = signer(workspace, allow_generated=True)
    mails = list(messages_in(mbox)) if mbox else [sys.stdin.buffer.read()]
    limit = workspace.settings.feedback.soft_bounce_limit
    results = []
    try:
        with connect(workspace.database_url) as engine:
            for raw in mails:
                results.append(apply(engine, keys, raw, limit))
    except NewsletterError as exc:
        if exc.exit_status == ExitStatus.UNAVAILABLE:  # printed by the CLI as any error is
            exc.exit_status = ExitStatus.TEMPFAIL
        raise
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    for r in results:
        who = f"subscriber #{r.subscriber_id}" if r.subscriber_id else "nobody we know"
        what = "already seen" if r.duplicate else ("changed" if r.changed else "recorded")
        err.print(Text(f"{r.kind}: {who}, {what}" + (f" ({r.detail})" if r.detail else "")))
