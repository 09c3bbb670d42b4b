"""Routes behind every unsubscribe, preferences and confirmation link. Thin: parse the
request, call the consent service (in a thread: the database is synchronous), render a page.

RFC 8058: POST /u/{token} with `List-Unsubscribe=One-Click` (urlencoded or multipart)
unsubscribes at once and answers 200, never a redirect, needing no cookie. GET never
changes anything, because link scanners fetch links.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from newsletter.domain.subscriber import Source, Status, SubscriberRecord, mask_email
from newsletter.domain.tokens import Purpose
from newsletter.errors import InputError
from newsletter.services.consent import ConsentService
from newsletter.services.subscribers import Context, checked_name, parse_address
from newsletter.web.archive import ArchiveContext, archive_routes
from newsletter.web.clicks import ROUTE as CLICK_ROUTE
from newsletter.web.clicks import ClickContext, click
from newsletter.web.middleware import Guard
from newsletter.web.ratelimit import RateLimiter, client_key
from newsletter.web.webhooks import (
    INBOUND_PATH,
    PATH,
    WebhookContext,
    inbound_mail,
    sendgrid_events,
)

log = logging.getLogger("newsletter.web")


@dataclass
class WebContext:
    consent: ConsentService
    pages: Environment
    newsletter: str
    topics: list[str]
    subscribe_limit: RateLimiter
    confirm_ceiling: RateLimiter
    trusted_proxies: list[Any]


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


def page(ctx: WebContext, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = ctx.pages.get_template(template).render(newsletter=ctx.newsletter, **values)
    return HTMLResponse(body, status_code=status)  # headers: web/middleware.py, for all


def message(
    ctx: WebContext,
    title: str,
    *paragraphs: str,
    status: int = 200,
    link: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(ctx, "message.html.j2", status, title=title, paragraphs=paragraphs, link=link)


def not_found(ctx: WebContext) -> HTMLResponse:
    """The same page for a forged, truncated, altered or expired token and for a stranger."""
    return message(
        ctx,
        "Link not valid",
        "This link is not valid. It may have been cut short when it was copied.",
        status=404,
    )


def not_found_handler(ctx: WebContext):  # type: ignore[no-untyped-def]
    async def handler(request: Request, exc: Exception) -> Response:
        return not_found(ctx)

    return handler


def client_context(ctx: WebContext, request: Request, source: Source) -> Context:
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), ctx.trusted_proxies)
    return Context(source, None, ip, request.headers.get("user-agent"))


def client_ip(peer: str | None, forwarded: str | None, trusted: list[Any]) -> str | None:
    """The client's address: the direct peer, unless that is a trusted proxy; then the
    right-most hop of X-Forwarded-For that is not one (each proxy appends what it saw;
    anything further left is the client's own claim)."""

    def parsed(text: str | None) -> Any:
        try:
            return ipaddress.ip_address((text or "").strip())
        except ValueError:
            return None

    def is_proxy(address: Any) -> bool:
        return any(address in network for network in trusted)

    address = parsed(peer)
    if address is None or not forwarded or not is_proxy(address):
        return str(address) if address is not None else None
    for hop in reversed([parsed(h) for h in forwarded.split(",")]):
        if hop is None:
            break  # garbage where a proxy's entry should be: believe nothing further
        address = hop
        if not is_proxy(hop):
            break
    return str(address) if address is not None else None


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


NOTICES = {  # what the preferences page says after each action
    "resubscribe": "A message with a link to confirm is on its way to you.",
    "pause": "Paused. No newsletter until the date below.",
    "resume": "Resumed. The next issue comes to you as usual.",
    "topics": "Your topics are saved.",
    "unsubscribe": "You are unsubscribed.",
}


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"  # 2 March 2027, not 02 March 2027


async def preferences(ctx: WebContext, request: Request) -> Response:
    token = request.path_params["token"]
    consent = ctx.consent
    notice = error = None
    if request.method == "POST":
        current = await run_in_threadpool(consent.subscriber_for, token, Purpose.PREFERENCES)
        if current is None:  # the token first: a forged one costs no body parsing
            return not_found(ctx)
        form = await request.form()
        action = str(form.get("action") or "")
        offered = set(ctx.topics) | set(current.topics if current else [])
        topics = [str(t) for t in form.getlist("topic") if str(t) in offered]
        pause = str(form.get("pause_days") or "")
        try:
            record = await run_in_threadpool(
                lambda: consent.save_preferences(
                    token,
                    action,
                    topics=topics,
                    pause_days=int(pause) if pause.isascii() and pause.isdecimal() else None,
                    context=client_context(ctx, request, Source.PREFERENCES),
                )
            )
            notice = NOTICES.get(action, "Saved.")
        except InputError as exc:
            record, error = None, exc.message
            record = await run_in_threadpool(consent.subscriber_for, token, Purpose.PREFERENCES)
    else:
        record = await run_in_threadpool(consent.subscriber_for, token, Purpose.PREFERENCES)
    if record is None:
        return not_found(ctx)
    subscribed = record.status in (Status.ACTIVE, Status.PENDING)
    status_text = {
        Status.ACTIVE: "subscribed.",
        Status.PENDING: "waiting for you to confirm your address.",
        Status.UNSUBSCRIBED: "unsubscribed.",
    }.get(record.status, "not receiving emails.")
    return page(
        ctx,
        "preferences.html.j2",
        status=400 if error else 200,
        title="Preferences",
        masked=mask_email(record.email or ""),
        status_text=status_text,
        subscribed=subscribed,
        can_return=record.status == Status.UNSUBSCRIBED,
        topics=ctx.topics + sorted(set(record.topics) - set(ctx.topics)),
        chosen=set(record.topics),
        paused_until=_day(record.paused_until) if record.paused_until else None,
        notice=notice,
        error=error,
    )


async def subscribe(ctx: WebContext, request: Request) -> Response:
    if request.method != "POST":  # GET and HEAD never change anything
        return page(
            ctx,
            "subscribe.html.j2",
            title="Subscribe",
            topics=ctx.topics,
            email="",
            name="",
            error=None,
        )
    form = await request.form()
    email = str(form.get("email") or "").strip()
    name = str(form.get("name") or "").strip()[:200] or None
    context = client_context(ctx, request, Source.WEB_FORM)
    sent = message(
        ctx,
        "Check your inbox",
        "If that address can subscribe, a message is on its way to it with a link "
        "to confirm. Nothing is sent to you until you click it.",
    )
    if form.get("website"):
        return sent  # the honeypot: only robots fill the hidden field
    if not ctx.subscribe_limit.allow(client_key(context.ip)):
        return message(ctx, "Too many requests", "Please try again in an hour.", status=429)
    topics = [str(t) for t in form.getlist("topic") if str(t) in ctx.topics]
    try:
        address = parse_address(email)
        checked_name(name)
    except InputError:
        return page(
            ctx,
            "subscribe.html.j2",
            status=400,
            title="Subscribe",
            topics=ctx.topics,
            email=email,
            name=name or "",
            error="Please enter a valid email address and a name without special characters.",
        )
    if not ctx.confirm_ceiling.allow("all"):
        log.warning("confirmation mails: over [web] confirm_mails_per_hour, request dropped")
        return sent  # the same answer: the ceiling is not for a visitor to probe
    # The rest happens after the answer: creating a subscriber and mailing them takes
    # longer than finding a known one, and the timing must not tell the two apart.
    sent.background = BackgroundTask(_subscribe_quietly, ctx, address.email, name, topics, context)
    return sent


def _subscribe_quietly(
    ctx: WebContext, email: str, name: str | None, topics: list[str], context: Context
) -> None:
    try:
        ctx.consent.subscribe(email, name, topics, context)
    except Exception:  # the answer is sent already; the log is where this can go
        log.exception("subscribe request for a web visitor failed")


async def confirm(ctx: WebContext, request: Request) -> Response:
    """Mail scanners fetch every link in a message: a GET (or HEAD) only shows a button, and
    only its POST confirms, so nobody's scanner completes a stranger's double opt-in."""
    if request.method != "POST":
        pending = await run_in_threadpool(
            ctx.consent.subscriber_for, request.path_params["token"], Purpose.CONFIRM
        )
        if pending is None:
            return not_found(ctx)
        return page(ctx, "confirm.html.j2", title="Confirm", masked=mask_email(pending.email or ""))
    record = await run_in_threadpool(
        ctx.consent.confirm,
        request.path_params["token"],
        client_context(ctx, request, Source.WEB_FORM),
    )
    if record is None:
        return not_found(ctx)
    if record.status != Status.ACTIVE:
        return message(ctx, "Not subscribed", "This address cannot be subscribed.")
    return message(
        ctx,
        "You are subscribed",
        f"Thank you: {mask_email(record.email or '')} will get {ctx.newsletter}.",
    )
