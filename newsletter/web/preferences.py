"""`/preferences/{token}`: topics, a pause, unsubscribe, and coming back (which mails a
confirmation link: double opt-in again)."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.domain.subscriber import Source, Status, mask_email
from newsletter.domain.tokens import Purpose
from newsletter.errors import InputError
from newsletter.web.pages import WebContext, client_context, not_found, page

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
