"""`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook. The path carries no token:
the ECDSA signature over the raw body is what protects it (403 when missing, wrong or
stale); the body is capped separately (`[webhooks] max_body_bytes`, 20 MB)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.services.feedback import BadSignature, WebhookVerifier, ingest, parse_events

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PATH = "/webhooks/sendgrid"


@dataclass
class WebhookContext:
    engine: Engine
    verifier: WebhookVerifier | None  # None: no SENDGRID_WEBHOOK_PUBLIC_KEY, the path is off


async def sendgrid_events(ctx: WebhookContext, request: Request) -> Response:
    if ctx.verifier is None:
        return JSONResponse({"error": "the event webhook is not configured"}, status_code=404)
    body = await request.body()
    try:
        ctx.verifier.verify(body, request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP))
    except BadSignature as exc:
        return JSONResponse({"error": f"refused: {exc}"}, status_code=403)
    try:
        events = parse_events(body)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    result = await run_in_threadpool(ingest, ctx.engine, events)
    return JSONResponse(result.__dict__)
