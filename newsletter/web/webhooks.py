"""Provider feedback posted to the web app; bodies are capped by `[webhooks] max_body_bytes`.

`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook. The path carries no token: the
ECDSA signature over the raw body is what protects it (403 when missing, wrong or stale).

`POST /webhooks/inbound/<secret>`: SendGrid Inbound Parse, mail that came back (bounces,
reports, mailto unsubscribes). Those posts are not signed, so the path holds a secret
(`NEWSLETTER_WEBHOOKS__INBOUND_SECRET`), compared in constant time; a wrong one is 404,
like a path that does not exist. Every accepted post is answered 200, even for mail we
ignore: anything else makes SendGrid retry it for days."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.domain.inbound import from_parse_post
from newsletter.domain.tokens import Signer
from newsletter.services.feedback import BadSignature, WebhookVerifier, ingest_body
from newsletter.services.inbound import apply

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PATH = "/webhooks/sendgrid"
INBOUND_PATH = "/webhooks/inbound/"


@dataclass
class WebhookContext:
    engine: Engine
    verifier: WebhookVerifier | None  # None: no SENDGRID_WEBHOOK_PUBLIC_KEY, the path is off
    signer: Signer | None = None
    inbound_secret: str | None = None  # None: the Inbound Parse path is off
    soft_bounce_limit: int = 3
    max_body_bytes: int = 20 * 1024 * 1024


async def sendgrid_events(ctx: WebhookContext, request: Request) -> Response:
    if ctx.verifier is None:
        return JSONResponse({"error": "the event webhook is not configured"}, status_code=404)
    body = await request.body()
    try:
        ctx.verifier.verify(body, request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP))
    except BadSignature as exc:
        return JSONResponse({"error": f"refused: {exc}"}, status_code=403)
    try:
        result = await run_in_threadpool(ingest_body, ctx.engine, body)
    except ValueError as exc:  # not JSON, or not an array of events: nothing stored
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(result.__dict__)


async def inbound_mail(ctx: WebhookContext, request: Request) -> Response:
    given = request.path_params.get("secret", "")
    if (
        ctx.inbound_secret is None
        or ctx.signer is None
        or not hmac.compare_digest(given.encode(), ctx.inbound_secret.encode())
    ):
        return JSONResponse({"error": "not found"}, status_code=404)
    fields: dict[str, str] = {}
    async with request.form(max_files=50, max_part_size=ctx.max_body_bytes) as form:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, value)
            elif name == "email":  # the raw mail, sent as a file by some clients
                fields.setdefault(name, (await value.read()).decode("utf-8", "replace"))
    if "email" not in fields and "headers" not in fields:
        return JSONResponse({"error": "not an Inbound Parse post (no email or headers field)"}, 400)
    raw = from_parse_post(fields)
    result = await run_in_threadpool(apply, ctx.engine, ctx.signer, raw, ctx.soft_bounce_limit)
    return JSONResponse(result.__dict__)
