"""`newsletter archive`: the public archive of sent issues, as a static site with a feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import JsonFlag, app, err, open_current_workspace, out, print_json
from newsletter.cli.progress import LateProgress
from newsletter.errors import InputError

group = typer.Typer(
    help="The public archive: every sent or published issue as web pages and an Atom feed.",
    epilog="Example: newsletter archive build --out /var/www/archive",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(group, name="archive")


@group.command("build", epilog="Example: newsletter archive build --out /var/www/archive")
def build(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: STATE/archive).", file_okay=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the archive: index.html, SLUG/index.html per issue, and feed.xml (Atom).

    Issues some reader got (also from a send cancelled halfway) or marked
    `status: published` are on it.
    The folder is replaced whole, only once everything is written."""
    from newsletter.infra.db.engine import connect
    from newsletter.infra.files import display_path
    from newsletter.services.archive import ArchiveService, default_out_dir, write_site

    workspace = open_current_workspace()
    target = out_dir or default_out_dir(workspace)
    progress = LateProgress("archive", enabled=not as_json)
    with connect(workspace.database_url) as engine:
        try:
            site = ArchiveService(workspace, engine).build(on_progress=progress)
        finally:
            progress.stop()
    failed = [p for p in site.problems if p.public]
    for problem in site.problems:
        if not problem.public:
            err.print(Text(f"warning: {problem.slug} left out: {problem.message}"), style="yellow")
    if failed:
        for problem in failed:
            err.print(Text(f"error: {problem.slug}: {problem.message}"), style="red")
        raise InputError(f"{len(failed)} issue(s) of the archive cannot be built; nothing written")
    written = write_site(site, target)
    if as_json:
        print_json(
            {
                "ok": True,
                "out": str(target),
                "index": str(written["index.html"]),
                "feed": str(written["feed.xml"]),
                "issues": [
                    {
                        "slug": e.slug,
                        "subject": e.subject,
                        "date": e.day.isoformat(),
                        "sent": e.sent,
                        "url": e.url,
                        "file": str(written[f"{e.slug}/index.html"]),
                    }
                    for e in site.entries
                ],
                "warnings": [
                    {"slug": p.slug, "message": p.message} for p in site.problems if not p.public
                ],
            }
        )
        return
    for entry in site.entries:
        how = "sent" if entry.sent else "published"
        page = display_path(written[f"{entry.slug}/index.html"])
        out.print(Text(f"page  {page}  ({how}, {entry.day})"))
    out.print(Text(f"index {display_path(written['index.html'])}"))
    out.print(Text(f"feed  {display_path(written['feed.xml'])}"))
    out.print(Text(f"{len(site.entries)} issue(s) in {display_path(target)}"))
