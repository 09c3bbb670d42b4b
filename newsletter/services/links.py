"""The list's identity and the signer for its links, from the workspace's settings."""

from __future__ import annotations

from newsletter.domain.list_headers import ListIdentity, default_list_id
from newsletter.domain.tokens import Signer
from newsletter.infra.settings import Settings, load_signing_keys
from newsletter.infra.workspace import Workspace


def list_identity(settings: Settings) -> ListIdentity:
    return ListIdentity(
        name=settings.name,
        list_id=settings.list_id or default_list_id(settings.name, settings.base_url),
        base_url=settings.base_url,
        unsubscribe_mailbox=settings.unsubscribe_address,
        bounce_domain=settings.smtp.bounce_domain,
    )


def signer(workspace: Workspace, *, allow_generated: bool = False) -> Signer:
    return Signer(load_signing_keys(workspace.state_dir, allow_generated=allow_generated))
