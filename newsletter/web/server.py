"""Wiring the web app for a workspace, and running it under uvicorn."""

from __future__ import annotations

import errno
import logging
import os
import socket
from datetime import timedelta

import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette

from newsletter.domain.tokens import Signer
from newsletter.errors import ConfigError, ExitStatus, NewsletterError
from newsletter.infra.transports.factory import make_transport
from newsletter.infra.workspace import Workspace
from newsletter.services.archive import ArchiveCache, ArchiveService
from newsletter.services.consent import ConsentService
from newsletter.services.feedback import WebhookVerifier
from newsletter.services.library import Library
from newsletter.services.links import list_identity
from newsletter.services.render import Renderer
from newsletter.services.subscribers import SubscriberStore
from newsletter.web.app import create_app
from newsletter.web.archive import ArchiveContext
from newsletter.web.clicks import ClickContext
from newsletter.web.webhooks import WebhookContext


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
    # The configured topics are what readers can choose; without any, the snippets' tags.
    topics = list(settings.topics) or sorted(
        {tag for s in Library(workspace).snippets() for tag in s.meta.tags}
    )
    labels = {tag: (topic.label, topic.description) for tag, topic in settings.topics.items()}
    return create_app(
        consent,
        workspace.templates_dir,
        settings.name,
        topics,
        WebhookContext(
            engine,
            webhook_verifier(settings.webhooks.max_age),
            signer,
            secret.get_secret_value() if (secret := settings.webhooks.inbound_secret) else None,
            settings.feedback.soft_bounce_limit,
            settings.webhooks.max_body_bytes,
        ),
        settings.webhooks.max_body_bytes,
        ClickContext(engine, signer),
        labels,
        ArchiveContext(ArchiveCache(ArchiveService(workspace, engine))),
    )


def webhook_verifier(max_age: timedelta) -> WebhookVerifier | None:
    key = os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip()
    if not key:
        return None
    try:
        return WebhookVerifier(key, max_age)
    except ValueError as exc:
        raise ConfigError(str(exc), "environment variable SENDGRID_WEBHOOK_PUBLIC_KEY") from None


class PortInUse(NewsletterError):
    exit_status = ExitStatus.UNAVAILABLE


def bind(host: str, port: int) -> socket.socket:
    """Take the port before saying "serving": a busy port is an error of its own (69)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use on {host}") from None
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(app: Starlette, sock: socket.socket) -> None:
    """uvicorn's access log would print every token whole: ours (web/middleware.py)
    shortens them."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = uvicorn.Config(app, log_level="info", proxy_headers=False, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
