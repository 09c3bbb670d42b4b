"""The web app: its routes (preferences, subscription, archive, clicks and webhooks have
modules of their own), /healthz, and the unsubscribe link. Thin: parse the request, call
the consent service (in a thread: the database is synchronous), render a page.

RFC 8058: POST /u/{token} with `List-Unsubscribe=One-Click` (urlencoded or multipart)
unsubscribes at once and answers 200, never a redirect, needing no cookie. GET never
changes anything, because link scanners fetch links.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from newsletter.domain.subscriber import Source, Status, SubscriberRecord, mask_email
from newsletter.domain.tokens import Purpose
from newsletter.services.consent import ConsentService
from newsletter.web.archive import ArchiveContext, archive_routes
from newsletter.web.clicks import ROUTE as CLICK_ROUTE
from newsletter.web.clicks import ClickContext, click
from newsletter.web.middleware import Guard
from newsletter.web.pages import (
    WebContext,
    client_context,
    message,
    not_found,
    not_found_handler,
    page,
)
from newsletter.web.preferences import preferences
from newsletter.web.ratelimit import RateLimiter
from newsletter.web.subscription import confirm, subscribe
from newsletter.web.webhooks import (
    INBOUND_PATH,
    PATH,
    WebhookContext,
    inbound_mail,
    sendgrid_events,
)

log = logging.getLogger("newsletter.web")


def create_app(
    consent: ConsentService,
    templates_dir: Path,
    newsletter: str,
    topics: list[str],
    webhooks: WebhookContext | None = None,
    webhook_max_bytes: int = 20 * 1024 * 1024,
    clicks: ClickContext | None = None,
    labels: dict[str, tuple[str, str]] | None = None,
    archive: ArchiveContext | None = None,
) -> Starlette:
    """`labels`: topic -> (label, description) as readers see them (`[topics]`).
    `archive`: the public archive (/archive/, /feed.xml)."""
    web = consent.web
    pages = Environment(
        loader=FileSystemLoader(str(templates_dir / "web")),
        autoescape=True,
        undefined=StrictUndefined,
    )
    named = labels or {}
    pages.filters["topic_label"] = lambda tag: named.get(tag, (tag, ""))[0]
    pages.filters["topic_description"] = lambda tag: named.get(tag, (tag, ""))[1]
    ctx = WebContext(
        consent=consent,
        pages=pages,
        newsletter=newsletter,
        topics=list(topics),  # in the order configured
        subscribe_limit=RateLimiter(web.subscribe_per_ip_per_hour, 3600),
        confirm_ceiling=RateLimiter(web.confirm_mails_per_hour, 3600),
        trusted_proxies=list(web.trusted_proxies),
    )
    routes = [
        Route("/healthz", partial(healthz, ctx), methods=["GET"]),
        Route("/u/{token}", partial(unsubscribe, ctx), methods=["GET", "POST"]),
        Route("/preferences/{token}", partial(preferences, ctx), methods=["GET", "POST"]),
        Route("/subscribe", partial(subscribe, ctx), methods=["GET", "POST"]),
        Route("/confirm/{token}", partial(confirm, ctx), methods=["GET", "POST"]),
    ]
    if clicks is not None:  # always on: links already sent keep working when tracking stops
        routes.append(Route(CLICK_ROUTE, partial(click, clicks), methods=["GET", "HEAD"]))
    if archive is not None:
        routes.extend(archive_routes(archive))
    if webhooks is not None:
        routes.append(Route(PATH, partial(sendgrid_events, webhooks), methods=["POST"]))
        routes.append(
            Route(INBOUND_PATH + "{secret}", partial(inbound_mail, webhooks), methods=["POST"])
        )
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found_handler(ctx)},
        middleware=[
            Middleware(
                Guard,
                max_body_bytes=web.max_body_bytes,
                body_seconds=web.body_timeout_seconds,
                own_origin=consent.identity.base_url,
                larger={PATH: webhook_max_bytes, INBOUND_PATH: webhook_max_bytes},
            )
        ],
    )


async def healthz(ctx: WebContext, request: Request) -> Response:
    def ping() -> None:
        with ctx.consent.store.reader.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception as exc:  # any database failure means "not healthy"
        return JSONResponse({"status": "error", "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok"})


async def unsubscribe(ctx: WebContext, request: Request) -> Response:
    token = request.path_params["token"]
    consent = ctx.consent
    if request.method != "POST":  # GET and HEAD never change anything
        record = await run_in_threadpool(consent.subscriber_for, token, Purpose.UNSUBSCRIBE)
        if record is None:
            return not_found(ctx)
        return unsubscribe_page(ctx, record, done=False)
    # The token first: a forged one costs no body parsing.
    if await run_in_threadpool(consent.subscriber_for, token, Purpose.UNSUBSCRIBE) is None:
        return not_found(ctx)
    form = await request.form()
    if form.get("List-Unsubscribe") != "One-Click":
        return message(
            ctx, "Nothing changed", "This request did not ask to unsubscribe.", status=400
        )
    source = (
        Source.ONE_CLICK
        if "text/html" not in request.headers.get("accept", "")
        else Source.WEB_FORM
    )
    record = await run_in_threadpool(
        consent.unsubscribe, token, client_context(ctx, request, source)
    )
    if record is None:
        return not_found(ctx)
    return unsubscribe_page(ctx, record, done=True)


def unsubscribe_page(ctx: WebContext, record: SubscriberRecord, *, done: bool) -> Response:
    preferences = ctx.consent.signer.sign(Purpose.PREFERENCES, record.id)
    return page(
        ctx,
        "unsubscribe.html.j2",
        title="Unsubscribe",
        masked=mask_email(record.email or ""),
        done=done,
        already=record.status != Status.ACTIVE and record.status != Status.PENDING,
        preferences_url=f"{ctx.consent.identity.base_url}/preferences/{preferences}",
    )
