"""Wiring the web app for a workspace, and running it under uvicorn."""

from __future__ import annotations

import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette

from newsletter.domain.tokens import Signer
from newsletter.infra.transports.factory import make_transport
from newsletter.infra.workspace import Workspace
from newsletter.services.consent import ConsentService
from newsletter.services.library import Library
from newsletter.services.links import list_identity
from newsletter.services.render import Renderer
from newsletter.services.subscribers import SubscriberStore
from newsletter.web.app import create_app


def build_app(workspace: Workspace, engine: Engine, signer: Signer) -> Starlette:
    settings = workspace.settings
    consent = ConsentService(
        store=SubscriberStore(engine),
        signer=signer,
        identity=list_identity(settings),
        web=settings.web,
        renderer=Renderer(workspace.templates_dir, settings),
        transport=make_transport(workspace),
    )
    topics = sorted({tag for s in Library(workspace).snippets() for tag in s.meta.tags})
    return create_app(consent, workspace.templates_dir, settings.name, topics)


def run(app: Starlette, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
