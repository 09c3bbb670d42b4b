"""What every request and response goes through, whatever route (or no route) answers:

- bodies are capped (by Content-Length, and while they stream: 413) and must arrive in
  time (408), before any handler parses them;
- a browser's state-changing POST from another site is refused (Origin, Sec-Fetch-Site);
  RFC 8058 one-click POSTs from mailbox providers carry neither and pass;
- the security headers are added to every response, 404 and 405 included;
- one access-log line, with tokens shortened (a token in a URL is a credential; uvicorn's
  own access log would print it whole, with the client's address).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # The token in the URL is the credential: never leak it to another site through
    # Referer. `same-origin`, not `no-referrer`: under no-referrer a browser sends
    # `Origin: null` with the page's own form posts, which look cross-site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
_TOKEN_PATH = re.compile(r"^/(u|preferences|confirm|c|webhooks/inbound)/([^/?]{4})[^/?]*")
access_log = logging.getLogger("newsletter.access")


def shorten_tokens(path: str) -> str:
    return _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/{m.group(2)}…", path)


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = 64 * 1024,
        body_seconds: float = 10.0,
        own_origin: str | None = None,
        larger: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths allowed a bigger body (the webhooks); a key ending in / covers the folder.
        self.larger = larger or {}
        self.body_seconds = body_seconds
        self.own_hosts = {urlsplit(own_origin).netloc} if own_origin else set()
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    def _limit(self, path: str) -> int:
        for prefix, limit in self.larger.items():
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                return limit
        return self.max_body_bytes

    def _cross_site(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers", []))
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
        if site == "cross-site":
            return True
        if site in ("same-origin", "none"):  # the browser says so: our page, or typed in
            return False
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin or origin == "null":
            return origin == "null"
        host = headers.get(b"host", b"").decode("latin-1")
        return urlsplit(origin).netloc not in self.own_hosts | {host}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: dict[str, Any] = {"code": 0}
        received = 0
        limit = self._limit(scope.get("path", ""))
        deadline = started + self.body_seconds

        async def reading() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise _Refused(408, "the request body came too slowly") from None
            received += len(message.get("body", b""))
            if received > limit:
                raise _Refused(413, "request body too large")
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self._headers if header[0] not in present
                ]
            await send(message)

        try:
            declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
            try:
                too_large = int(declared or b"0") > limit
            except ValueError:  # only this header's: a route's own ValueError is a 500
                raise _Refused(400, "bad Content-Length") from None
            if too_large:
                raise _Refused(413, "request body too large")
            if scope.get("method") == "POST" and self._cross_site(scope):
                raise _Refused(403, "cross-site form posts are refused")
            await self.app(scope, reading, sending)
        except _Refused as refused:
            if status["code"]:
                raise
            code, text = refused.status, refused.text
            body = text.encode()
            await sending(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            access_log.info(
                "%s %s %s %.0f ms",
                scope.get("method", "?"),
                shorten_tokens(scope.get("path", "")),
                status["code"] or "-",
                (time.monotonic() - started) * 1000,
            )
