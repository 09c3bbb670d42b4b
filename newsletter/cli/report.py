"""`newsletter report`: one send's statistics as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.app import app, open_current_workspace, out
from newsletter.errors import InputError


@app.command(epilog="Example: newsletter report 3 --out send-3.html")
def report(
    send_id: Annotated[
        int, typer.Argument(help="The send (see `newsletter sends list`).", metavar="SEND_ID")
    ],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="The HTML file to write (its folder must exist).", metavar="FILE"
        ),
    ],
) -> None:
    """One send as an HTML page: figures, opens and clicks per hour, reasons, top links."""
    from newsletter.infra.db.engine import connect
    from newsletter.infra.files import display_path, open_atomically
    from newsletter.services.report import build_report, render_report

    folder = out_file.parent
    if not folder.is_dir():  # before any work: a typo in the path costs nothing
        raise InputError(
            f"cannot write the report: folder {display_path(folder)} does not exist",
            display_path(out_file),
        )
    if out_file.is_dir():
        raise InputError("cannot write the report: this is a folder", display_path(out_file))
    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        found = build_report(engine, send_id)
    page = render_report(workspace, found)
    with open_atomically(out_file) as handle:
        handle.write(page)
    out.print(display_path(out_file), markup=False)
