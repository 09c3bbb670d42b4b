"""Choosing and building the configured transport."""

from __future__ import annotations

from newsletter.domain.message import Sender
from newsletter.errors import ConfigError
from newsletter.infra.setting_tables import OutboxSettings, SendgridSettings, SmtpSettings
from newsletter.infra.settings import Secrets
from newsletter.infra.transports.base import Transport
from newsletter.infra.transports.outbox import OutboxTransport
from newsletter.infra.transports.sendgrid import SendgridTransport
from newsletter.infra.transports.smtp import SmtpTransport
from newsletter.infra.workspace import Workspace


def sender_of(workspace: Workspace) -> Sender:
    settings = workspace.settings
    return Sender(settings.from_address, settings.from_name, settings.reply_to)


TransportSettings = OutboxSettings | SmtpSettings | SendgridSettings


def transport_settings(workspace: Workspace, name: str) -> TransportSettings:
    settings = workspace.settings
    tables: dict[str, TransportSettings] = {
        "outbox": settings.outbox,
        "smtp": settings.smtp,
        "sendgrid": settings.sendgrid,
    }
    if name not in tables:
        raise ConfigError(f"transport: unknown transport {name!r} (outbox, smtp, sendgrid)")
    return tables[name]


def make_transport(workspace: Workspace, name: str | None = None) -> Transport:
    chosen = name or workspace.settings.transport
    transport_settings(workspace, chosen)
    sender = sender_of(workspace)
    settings = workspace.settings
    if chosen == "outbox":
        return OutboxTransport(workspace.state_dir / "outbox", sender)
    if chosen == "smtp":
        return SmtpTransport(settings.smtp, sender)
    key = Secrets.from_environ().sendgrid_api_key
    if key is None:
        raise ConfigError(
            "SENDGRID_API_KEY is not set; the sendgrid transport needs it",
            "environment variable SENDGRID_API_KEY",
        )
    return SendgridTransport(settings.sendgrid, sender, key.get_secret_value())
