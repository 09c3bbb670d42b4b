"""The tables of `newsletter.toml` ([smtp], [sendgrid], [web], [theme] ...) and the value
types they share: one pydantic model per table, unknown keys refused. `settings.py` puts
them together and reads the file and the environment."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    IPvAnyNetwork,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from newsletter.domain.links import is_local_http


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError("must be an absolute http(s) URL such as https://news.example.com")
    return value.rstrip("/")


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]


def _base_url(value: str) -> str:
    """Links in real mail must be https; plain http only on this machine, to try the
    whole flow (send to the outbox, click, serve) locally."""
    value = _http_url(value)
    if value.startswith("http://") and not is_local_http(value):
        raise ValueError(
            "must be https:// (links in mail must be secure); plain http:// is only "
            "accepted for localhost, 127.0.0.1 or [::1], to try things locally"
        )
    return value


BaseUrlStr = Annotated[str, AfterValidator(_base_url)]
# One line of visible text: surrounding spaces dropped, never empty.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[^\r\n]*$")]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSettings(_Table):
    host: str = "localhost"
    port: PositiveInt = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    # Only ever from NEWSLETTER_SMTP__PASSWORD (the file is refused); never dumped or shown.
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    timeout: PositiveFloat = 30.0

    @field_validator("password", mode="before")
    @classmethod
    def _clean_password(cls, value: object) -> object:
        """Surrounding white space goes (env files add newlines); control characters in
        a password are a mistake, and said without echoing it."""
        if isinstance(value, str):
            value = value.strip()
            if not value.isprintable():
                raise ValueError("holds control characters")
            return value or None
        return value

    # A CA bundle to trust (a private relay's own certificate); default: the system's.
    cafile: Path | None = None
    rate: PositiveFloat | None = None  # messages per second; None = as fast as the server takes
    concurrency: PositiveInt = 4
    # VERP: each message's envelope sender is bounces+<signed token>@bounce_domain, so a
    # bounce names its delivery; mail to that domain goes to `newsletter inbound`.
    bounce_domain: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)+$"
    )


class SendgridSettings(_Table):
    host: HttpUrlStr = "https://api.sendgrid.com"
    asm_group_id: PositiveInt | None = None
    sandbox: bool = False
    categories: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list, max_length=10
    )
    timeout: PositiveFloat = 30.0
    rate: PositiveFloat | None = None
    concurrency: PositiveInt = 2


class OutboxSettings(_Table):
    rate: PositiveFloat | None = None
    concurrency: PositiveInt = 1


class SendingSettings(_Table):
    """How the delivery engine retries and when it gives up (for every transport)."""

    # Transient failures wait about base, 2*base, 4*base ... (capped at 10 minutes):
    # with 30 s and 8 attempts that spans about 35 minutes, enough for greylisting.
    retry_base_seconds: PositiveFloat = 30.0
    max_attempts: PositiveInt = 8
    # The send pauses after this many failed recipients in a row ...
    pause_after_failures: PositiveInt = 50
    # ... or after this many rounds (every thread trying once) of an unreachable server.
    pause_after_unreachable: PositiveInt = 4


class ScheduleSettings(_Table):
    """`newsletter schedule` and `newsletter daemon`."""

    timezone: str = "UTC"  # the zone a bare --at time is read in
    # A schedule missed by less than this (the daemon was down) fires when it starts;
    # beyond it, it is marked missed and never sent late. Seconds, or "PT1H".
    misfire_grace: timedelta = timedelta(hours=1)


class WebhookSettings(_Table):
    """Provider feedback posted to `serve` (the public key: SENDGRID_WEBHOOK_PUBLIC_KEY)."""

    max_age: timedelta = timedelta(minutes=10)  # a signed post older than this is refused
    max_body_bytes: PositiveInt = 20 * 1024 * 1024
    # The path segment of `POST /webhooks/inbound/<secret>` (SendGrid Inbound Parse posts
    # carry no signature). Only ever from NEWSLETTER_WEBHOOKS__INBOUND_SECRET.
    inbound_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @field_validator("inbound_secret", mode="before")
    @classmethod
    def _clean_secret(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value and (len(value) < 16 or not re.fullmatch(r"[A-Za-z0-9_.~-]+", value)):
                raise ValueError("must be at least 16 URL-safe characters (letters, digits, -_.~)")
            return value or None
        return value


class FeedbackSettings(_Table):
    """Bounces by mail: transient failures (4.x.x) count, and this many in a row (with no
    delivery between them) make the address `bounced`."""

    soft_bounce_limit: PositiveInt = 3


class TrackingSettings(_Table):
    """Our own click tracking (off by default): links go through `/c/<token>` on the web
    app, which records the click and redirects to the signed target."""

    clicks: bool = False


class UtmSettings(_Table):
    """UTM tagging of links; off unless `source` is set. Only links to `domains` (and their
    subdomains) are tagged: on a journal's or doi.org's link the parameters are noise and
    can break it. Default: the host of `base_url` (see `Settings.utm_domains`)."""

    source: str | None = None
    medium: str = "email"
    domains: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+$")]] | None = None


Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


class DarkThemeSettings(_Table):
    """[theme.dark]: the colours under `prefers-color-scheme: dark`; unset keeps the
    built-in dark palette."""

    brand: Color | None = None
    accent: Color | None = None
    text: Color | None = None
    muted: Color | None = None
    page: Color | None = None
    card: Color | None = None
    on_brand: Color | None = None


class ThemeSettings(_Table):
    """[theme]: the brand. The templates take every colour from here; the checks refuse a
    text/background pair under WCAG AA (4.5:1). Defaults: the sample's green look."""

    brand: Color = "#0b6e4f"  # the header band
    accent: Color = "#0b6e4f"  # links
    text: Color = "#1f2933"
    muted: Color = "#52606d"  # footer, sources, small print
    page: Color = "#f4f5f7"  # around the content
    card: Color = "#ffffff"  # behind the content
    on_brand: Color = "#ffffff"  # text on the header band
    font: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 ,'\"-]+$")] = (
        "Helvetica, Arial, sans-serif"
    )
    logo: str | None = None  # an https URL, or a file under issues/images/
    logo_alt: str | None = None
    logo_width: Annotated[int, Field(gt=0, le=600)] = 120
    footer_text: str | None = None  # one more line in the footer (a tagline, a disclaimer)
    dark: DarkThemeSettings = Field(default_factory=DarkThemeSettings)

    @model_validator(mode="after")
    def _logo_needs_alt(self) -> ThemeSettings:
        if self.logo and not (self.logo_alt or "").strip():
            raise ValueError("logo_alt is required with a logo (what the logo says)")
        return self


class TestSettings(_Table):
    """`newsletter send ISSUE --test`: who gets the [TEST] copies."""

    recipients: list[EmailStr] = Field(default_factory=list)


class TopicSettings(_Table):
    """A topic (a snippet tag subscribers can follow), as readers see it."""

    label: Text
    description: str = ""


class CheckSettings(_Table):
    review_max_age_days: PositiveInt = 365
    html_warn_kb: PositiveInt = 80
    html_max_kb: PositiveInt = 102
    subject_max_chars: PositiveInt = 78
    image_max_kb: PositiveInt = 300  # all the images of an issue together: a warning above

    @model_validator(mode="after")
    def _warn_below_max(self) -> CheckSettings:
        if self.html_warn_kb > self.html_max_kb:
            raise ValueError("html_warn_kb must not be above html_max_kb")
        return self


class WebSettings(_Table):
    """`newsletter serve`: where it listens and how it protects the subscribe form."""

    host: str = "127.0.0.1"
    port: PositiveInt = 8000
    subscribe_per_ip_per_hour: PositiveInt = 10
    confirm_resend_minutes: PositiveInt = 10
    confirm_max_sends: PositiveInt = 5
    confirm_ttl_days: PositiveInt = 7
    # Reverse proxies in front of `serve`: X-Forwarded-For is read only when the direct
    # peer is one of these (addresses or networks), the right-most untrusted hop first.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Whatever the addresses, at most this many subscribe requests an hour lead to a
    # confirmation mail (subscription bombing from many addresses).
    confirm_mails_per_hour: PositiveInt = 200
    # Every request body is capped (413 above it) and must arrive within this time (408).
    max_body_bytes: PositiveInt = 64 * 1024
    body_timeout_seconds: PositiveFloat = 10.0
