"""`/subscribe` and `/confirm/{token}`: double opt-in. The answer is the same whether or not
the address is known, and the work (a subscriber, a confirmation mail) happens after it;
GET /confirm shows a button, only its POST confirms (mail scanners fetch every link)."""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.domain.subscriber import Source, Status, mask_email
from newsletter.domain.tokens import Purpose
from newsletter.errors import InputError
from newsletter.services.subscribers import Context, checked_name, parse_address
from newsletter.web.pages import WebContext, client_context, message, not_found, page
from newsletter.web.ratelimit import client_key

log = logging.getLogger("newsletter.web")


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
