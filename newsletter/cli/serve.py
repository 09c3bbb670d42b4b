"""`newsletter serve`: the subscriber web app."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import app, err, open_current_workspace, out


@app.command(epilog="Example: NEWSLETTER_SECRET_KEY=... newsletter serve --port 8000")
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="Address to listen on (default: web.host, 127.0.0.1).", metavar="HOST"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default: web.port, 8000).", metavar="PORT"),
    ] = None,
) -> None:
    """Serve unsubscribe, preferences, subscribe and confirmation pages."""
    from newsletter.infra.db.engine import connect
    from newsletter.services.keys import serving_signer, signing_key_warning
    from newsletter.web.server import bind, build_app, run

    workspace = open_current_workspace()
    web = workspace.settings.web
    host, port = host or web.host, port or web.port
    # Refuses to start without NEWSLETTER_SECRET_KEY, except on loopback with the demo's key.
    keys, demo_warning = serving_signer(workspace, host)
    if demo_warning:
        err.print(Text(f"warning: {demo_warning}"), style="yellow")
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
