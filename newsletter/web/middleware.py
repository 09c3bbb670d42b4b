"""What every response gets, whatever route (or no route) answered: the security headers,
and one access-log line in which tokens are shortened (a token in a URL is a credential;
uvicorn's own access log would print it whole, with the client's address)."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # The token in the URL is the credential: never leak it through Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
_TOKEN_PATH = re.compile(r"^/(u|preferences|confirm)/([^/?]{4})[^/?]*")
access_log = logging.getLogger("newsletter.access")


def shorten_tokens(path: str) -> str:
    return _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/{m.group(2)}…", path)


class Guard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: dict[str, Any] = {"code": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in self._headers if header[0] not in present
                ]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            access_log.info(
                "%s %s %s %.0f ms",
                scope.get("method", "?"),
                shorten_tokens(scope.get("path", "")),
                status["code"] or "-",
                (time.monotonic() - started) * 1000,
            )
