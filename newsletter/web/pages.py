"""What every page handler shares: the context the app is built with, rendering a page or a
message, the friendly 404, and who the client is (behind trusted proxies only)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.domain.subscriber import Source
from newsletter.services.consent import ConsentService
from newsletter.services.subscribers import Context
from newsletter.web.ratelimit import RateLimiter


@dataclass
class WebContext:
    consent: ConsentService
    pages: Environment
    newsletter: str
    topics: list[str]
    subscribe_limit: RateLimiter
    confirm_ceiling: RateLimiter
    trusted_proxies: list[Any]


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
        "This link is not valid. It may have been cut short when it was copied: try "
        "the link in the email again, or use the unsubscribe link at the foot of any issue.",
        status=404,
        link={"url": "/archive/", "text": "Read the past issues"},
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
