"""SendGrid's suppression lists over its v3 API, through the `sendgrid` package's client.

Requests follow SendGrid's OpenAPI spec for them (tsg_suppressions_v3.json): the global
lists are read a page at a time (`limit` at most 500, `offset` in steps of the page size,
`start_time` in unix seconds, inclusive); an unsubscribe group's suppressions come whole,
since that operation takes no paging parameters. HTTP failures become our errors: SendGrid
unreachable, failing (5xx) or rate limiting us (429) is `SendgridUnavailable` (exit 69); a
refused key names SENDGRID_API_KEY, never its value.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sendgrid
from python_http_client import exceptions as http_errors

from newsletter.errors import ConfigError, ExitStatus, InputError, NewsletterError
from newsletter.infra.redaction import redact
from newsletter.infra.setting_tables import SendgridSettings
from newsletter.infra.settings import Secrets

PAGE_LIMIT = 500  # PaginationCommonLimit: "The maximum page size for this endpoint is 500"
# The spec sets no maximum on `recipient_emails`; we post at most as many as a page holds,
# which keeps each request small and a failure's loss clear.
PUSH_CHUNK = 500
KEY_VARIABLE = "environment variable SENDGRID_API_KEY"


class SuppressionList(StrEnum):
    """The global lists under /v3/suppression/ (each `GET` lists one, paged)."""

    BOUNCES = "bounces"
    SPAM_REPORTS = "spam_reports"
    INVALID_EMAILS = "invalid_emails"
    UNSUBSCRIBES = "unsubscribes"  # ListGlobalSuppression: the global unsubscribes


class SendgridUnavailable(NewsletterError):
    """SendGrid cannot be reached, fails, or asks us to wait: try again later."""

    exit_status = ExitStatus.UNAVAILABLE


@dataclass(frozen=True)
class Entry:
    """One address on a global list, as SendGrid gives it."""

    email: str
    created: int | None  # unix seconds
    reason: str | None  # bounces and invalid emails say why


def _reason(body: bytes | str | None) -> str:
    """SendGrid's `errors` messages, or the start of whatever else it answered."""
    try:
        parsed = json.loads(body or b"{}")
        messages = [str(e.get("message")) for e in parsed.get("errors", []) if e.get("message")]
        return "; ".join(messages) or "no reason given"
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text[:200] or "no reason given"


def _wait_hint(headers: Any) -> str:
    reset = headers.get("X-RateLimit-Reset") if headers else None
    if reset and str(reset).strip().isdigit():
        return f" (try again in {max(1, int(reset) - int(time.time()))} s)"
    return ""


class SuppressionsApi:
    """The calls `newsletter suppressions sync` makes; each raises our errors only."""

    def __init__(
        self, host: str, api_key: str, timeout: float, *, page_limit: int = PAGE_LIMIT
    ) -> None:
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit must be 1 to {PAGE_LIMIT}")
        self.host = host.rstrip("/")
        self.page_limit = page_limit
        self._api = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)
        self._api.client.timeout = timeout

    @classmethod
    def from_settings(cls, settings: SendgridSettings) -> SuppressionsApi:
        """The key comes from the environment only (SENDGRID_API_KEY), as for sends."""
        key = Secrets.from_environ().sendgrid_api_key
        if key is None:
            raise ConfigError(
                "SENDGRID_API_KEY is not set; syncing suppressions with SendGrid needs it",
                KEY_VARIABLE,
            )
        return cls(settings.host, key.get_secret_value(), settings.timeout)

    def pull(self, which: SuppressionList, start_time: int | None = None) -> list[Entry]:
        """Every entry of a global list (created at or after `start_time`), page by page
        until a page comes back short."""
        entries: list[Entry] = []
        offset = 0
        what = f"GET /v3/suppression/{which}"
        while True:
            params: dict[str, int] = {"limit": self.page_limit, "offset": offset}
            if start_time is not None:
                params["start_time"] = start_time
            page = self._call(
                what,
                lambda params=params: self._api.client.suppression._(str(which)).get(
                    query_params=params
                ),
            )
            if not isinstance(page, list):
                raise SendgridUnavailable(f"SendGrid answered {what} with something not a list")
            entries.extend(_entry(item) for item in page if _is_entry(item))
            if len(page) < self.page_limit:
                return entries
            offset += self.page_limit

    def group_members(self, group_id: int) -> list[str]:
        """The addresses in an unsubscribe group (the operation takes no paging)."""
        what = f"GET /v3/asm/groups/{group_id}/suppressions"
        found = self._call(what, lambda: self._group(group_id).get())
        if not isinstance(found, list):
            raise SendgridUnavailable(f"SendGrid answered {what} with something not a list")
        return [item for item in found if isinstance(item, str) and item.strip()]

    def add_to_group(
        self,
        group_id: int,
        emails: Sequence[str],
        *,
        chunk: int = PUSH_CHUNK,
        done: Callable[[list[str]], None] | None = None,
    ) -> int:
        """POST the addresses to the group, `chunk` at a time; `done` hears each chunk
        once SendGrid has taken it (so a failure part-way can say how far it got)."""
        what = f"POST /v3/asm/groups/{group_id}/suppressions"
        posted = 0
        for start in range(0, len(emails), chunk):
            part = list(emails[start : start + chunk])
            self._call(
                what,
                lambda part=part: self._group(group_id).post(
                    request_body={"recipient_emails": part}
                ),
            )
            posted += len(part)
            if done is not None:
                done(part)
        return posted

    def _group(self, group_id: int) -> Any:
        return self._api.client.asm.groups._(str(int(group_id))).suppressions

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """Make one request; its JSON answer, or our error for its failure."""
        try:
            response = request()
        except http_errors.HTTPError as exc:
            raise self._refused(what, exc) from None
        except ValueError as exc:  # refused while building the request; nothing was sent
            raise InputError(redact(f"cannot build the SendGrid request {what}: {exc}")) from None
        except urllib.error.URLError as exc:
            raise SendgridUnavailable(
                redact(f"cannot reach SendGrid at {self.host}: {exc.reason}")
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise SendgridUnavailable(
                redact(f"no answer from SendGrid at {self.host} to {what}: {exc!r}")
            ) from None
        try:
            return json.loads(response.body) if response.body else None
        except ValueError:
            raise SendgridUnavailable(f"SendGrid answered {what} with invalid JSON") from None

    def _refused(self, what: str, exc: http_errors.HTTPError) -> NewsletterError:
        status = exc.status_code
        reason = redact(_reason(exc.body))
        if status in (401, 403):
            return ConfigError(
                f"SendGrid refused the API key ({status} to {what}: {reason}); check that "
                "SENDGRID_API_KEY is current and allowed to read and write suppressions",
                KEY_VARIABLE,
            )
        if status == 429:
            return SendgridUnavailable(
                f"SendGrid is rate limiting us (429 to {what}){_wait_hint(exc.headers)}"
            )
        if status >= 500 or status == 408:
            return SendgridUnavailable(f"SendGrid failed ({status} to {what}): {reason}")
        return InputError(f"SendGrid refused {what} ({status}): {reason}")


def _is_entry(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("email"), str) and bool(item["email"])


def _entry(item: dict[str, Any]) -> Entry:
    created = item.get("created")
    reason = item.get("reason")
    return Entry(
        email=item["email"].strip(),
        created=int(created) if isinstance(created, int | float) else None,
        reason=str(reason)[:1000] if reason else None,
    )
