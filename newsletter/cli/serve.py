"""`newsletter serve`: the subscriber web app."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import app, err, open_current_workspace, out
from newsletter.infra.db.engine import connect
from newsletter.services.keys import signing_key_warning
from newsletter.services.links import signer
from newsletter.web.server import bind, build_app, run


@app.command(epilog="Example: NEWSLETTER_SECRET_KEY=... newsletter serve --port 8000")
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Default: [web] host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: [web] port.")] = None,
) -> None:
    """Serve unsubscribe, preferences, subscribe and confirmation pages."""
    workspace = open_current_workspace()
    keys = signer(workspace)  # refuses to start without NEWSLETTER_SECRET_KEY
    web = workspace.settings.web
    host, port = host or web.host, port or web.port
    with connect(workspace.database_url) as engine:
        application = build_app(workspace, engine, keys)
        if warning := signing_key_warning(engine, keys):
            err.print(Text(f"warning: {warning}"), style="yellow")
        sock = bind(host, port)
        out.print(
            f"serving {workspace.settings.name} on http://{host}:{port} "
            f"(links point at {workspace.settings.base_url})"
        )
        run(application, sock)
