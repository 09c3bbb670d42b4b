"""Signing-key rotation: dropping an old key from NEWSLETTER_SECRET_KEY breaks every
unsubscribe link in mail already sent. Each signing key's first use is remembered (a
fingerprint, never the key) so `send` and `serve` can warn when the only key configured is
newer than mail that is out there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, insert, select

from newsletter.domain.links import LOOPBACK_HOSTS
from newsletter.domain.tokens import Signer
from newsletter.errors import ConfigError
from newsletter.infra.db.clock import now, utc
from newsletter.infra.db.schema import meta, sends
from newsletter.infra.files import display_path
from newsletter.infra.settings import KEY_FILE, load_signing_keys
from newsletter.infra.workspace import Workspace
from newsletter.services.links import signer


def signing_key_warning(engine: Engine, signer: Signer) -> str | None:
    """Record the signing key's first use; warn when it is the only key and sends older
    than that first use exist (their links were signed by a key no longer listed)."""
    name = f"signing_key:{signer.fingerprint}"
    with engine.begin() as connection:
        first = connection.execute(select(meta.c.value).where(meta.c.key == name)).scalar()
        if first is None:
            first = now().isoformat()
            connection.execute(insert(meta).values(key=name, value=first))
        if signer.key_count > 1:
            return None
        since = utc(datetime.fromisoformat(first))
        older = connection.execute(
            select(func.count()).select_from(sends).where(sends.c.created_at < since)
        ).scalar_one()
    if not older:
        return None
    return (
        f"NEWSLETTER_SECRET_KEY lists one key, first used {since:%Y-%m-%d}, and {older} "
        "send(s) went out before it: their unsubscribe links no longer work. List the old "
        "key(s) after the new one (new,old) for as long as old mail should unsubscribe."
    )


def serving_signer(workspace: Workspace, host: str) -> tuple[Signer, str | None]:
    """The key `serve` signs and verifies with, and a warning when it is the demo's.

    NEWSLETTER_SECRET_KEY when set. Without it, on a loopback address only, the key the
    demo generated into the state folder: the links in the demo's outbox then work in a
    local `serve` (a new key would make every one of them a 404)."""
    try:
        return signer(workspace), None
    except ConfigError:
        demo = workspace.state_dir / KEY_FILE
        if host not in LOOPBACK_HOSTS or not demo.is_file():
            raise
    keys = load_signing_keys(workspace.state_dir, allow_generated=True)
    return Signer(keys), (
        f"NEWSLETTER_SECRET_KEY is not set: using the demo's key in {display_path(demo)}, "
        "on this machine only; a real server needs NEWSLETTER_SECRET_KEY"
    )
