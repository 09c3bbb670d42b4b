"""Signing-key rotation: dropping an old key from NEWSLETTER_SECRET_KEY breaks every
unsubscribe link in mail already sent. Each signing key's first use is remembered (a
fingerprint, never the key) so `send` and `serve` can warn when the only key configured is
newer than mail that is out there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, insert, select

from newsletter.domain.tokens import Signer
from newsletter.infra.db.schema import meta, sends
from newsletter.services.subscribers import now, utc


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
