"""Settings: `newsletter.toml` overridden by `NEWSLETTER_*` environment variables.

Secrets never live in the file: they are read from the environment only (`Secrets`).
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from newsletter.domain.plain_errors import plain_message
from newsletter.errors import ConfigError
from newsletter.infra.files import display_path, read_text

CONFIG_FILE = "newsletter.toml"
ENV_PREFIX = "NEWSLETTER_"
SECRET_KEYS = {
    "secret_key",
    "api_key",
    "password",
    "sendgrid_api_key",
    "smtp_password",
    "inbound_secret",
}


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError("must be an absolute http(s) URL such as https://news.example.com")
    return value.rstrip("/")


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_local_http(url: str) -> bool:
    return url.startswith("http://") and urlsplit(url).hostname in LOOPBACK_HOSTS


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


class Settings(BaseSettings):
    """Everything configurable; field names are the keys of `newsletter.toml`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    name: Text
    from_address: EmailStr
    from_name: Text
    reply_to: EmailStr | None = None
    postal_address: Text
    base_url: BaseUrlStr
    # List-Id (RFC 2919); default: derived from the name and the base URL's host.
    list_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+$")
    # Mailbox for the mailto: List-Unsubscribe target; none by default.
    unsubscribe_address: EmailStr | None = None
    state_dir: Path = Path(".state")
    database_url: str | None = None
    transport: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sendgrid: SendgridSettings = Field(default_factory=SendgridSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    sending: SendingSettings = Field(default_factory=SendingSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    utm: UtmSettings = Field(default_factory=UtmSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    test: TestSettings = Field(default_factory=TestSettings)
    theme: ThemeSettings = Field(default_factory=ThemeSettings)
    # [topics.<tag>] label = "...", description = "...": names for the tags readers follow.
    topics: dict[str, TopicSettings] = Field(default_factory=dict)

    @property
    def utm_domains(self) -> list[str]:
        """The hosts whose links get UTM parameters (subdomains included)."""
        if self.utm.domains is not None:
            return [d.lower().strip(".") for d in self.utm.domains]
        return [urlsplit(self.base_url).hostname or ""]

    def topic_label(self, tag: str) -> str:
        topic = self.topics.get(tag)
        return topic.label if topic else tag

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init keyword arguments.
        return (env_settings, init_settings)


class Secrets(BaseModel):
    """Secrets from the environment only; `SecretStr` keeps them out of reprs and logs.

    The SMTP password is `SmtpSettings.password`, filled from NEWSLETTER_SMTP__PASSWORD.
    """

    secret_keys: list[SecretStr] = Field(default_factory=list)
    sendgrid_api_key: SecretStr | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        keys = [
            _one_word(key, "NEWSLETTER_SECRET_KEY")
            for key in env.get("NEWSLETTER_SECRET_KEY", "").split(",")
            if key.strip()
        ]
        api_key = env.get("SENDGRID_API_KEY", "").strip()
        return cls(
            secret_keys=[SecretStr(k) for k in keys],
            sendgrid_api_key=SecretStr(_one_word(api_key, "SENDGRID_API_KEY")) if api_key else None,
        )


def _one_word(value: str, variable: str) -> str:
    """Secrets are normalised where they are read: surrounding white space (a trailing
    newline from `$(cat keyfile)` or an env file) goes; white space or control characters
    inside are an error that names the variable, never the value."""
    value = value.strip()
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(
            "holds white space or control characters inside; a key is one word",
            f"environment variable {variable}",
        )
    return value


KEY_FILE = "secret_key"


def load_signing_keys(state_dir: Path, *, allow_generated: bool) -> list[str]:
    """NEWSLETTER_SECRET_KEY (comma-separated: the first signs, all verify).

    Only the local demo may fall back to a key generated into the state folder; `serve`
    and real sends refuse to run without the environment variable.
    """
    keys = [key.get_secret_value() for key in Secrets.from_environ().secret_keys]
    if keys:
        if any(len(key) < 16 for key in keys):
            raise ConfigError(
                "each key must be at least 16 characters",
                "environment variable NEWSLETTER_SECRET_KEY",
            )
        return keys
    if not allow_generated:
        raise ConfigError(
            "NEWSLETTER_SECRET_KEY is not set; it signs unsubscribe and confirmation links. "
            "Create one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return [path.read_text(encoding="ascii").strip()]


def load_settings(root: Path) -> Settings:
    """Read `root/newsletter.toml`, apply the environment, and explain the first problem."""
    path = root / CONFIG_FILE
    shown = display_path(path)
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        reason = re.sub(r" \(at line.*", "", str(exc))
        raise ConfigError(
            f"invalid TOML: {reason}",
            shown,
            int(match.group(1)) if match else None,
        ) from None
    _refuse_secrets(data, text, shown)
    _refuse_unknown_keys(data, text, shown)
    _refuse_unknown_environment()
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _explain(exc, text, shown) from None
    except SettingsError as exc:  # e.g. NEWSLETTER_SMTP='not json'
        cause = exc.__cause__ or exc
        raise ConfigError(f"cannot read settings from the environment: {cause}") from None


# NEWSLETTER_* variables that are not settings but are ours all the same.
OTHER_VARIABLES = {"WORKSPACE", "SECRET_KEY", "TEST_POSTGRES", "SCREENSHOTS", "CHROMIUM"}


def _refuse_unknown_environment() -> None:
    """A misspelt variable would silently change nothing: name it instead."""
    known = {name.upper() for name in Settings.model_fields}
    for variable in os.environ:
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper[len(ENV_PREFIX) :] in OTHER_VARIABLES:
            continue
        table, _, key = upper[len(ENV_PREFIX) :].partition("__")
        field = Settings.model_fields.get(table.lower())
        if table in known and not key:
            continue
        nested = (
            field and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        )
        if nested and key.lower() in field.annotation.model_fields:  # type: ignore[union-attr]
            continue
        close = difflib.get_close_matches(upper[len(ENV_PREFIX) :], sorted(known), n=1)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close and not key else ""
        raise ConfigError(f"unknown setting{hint}", f"environment variable {variable}")


def _refuse_secrets(data: dict[str, Any], text: str, shown: str) -> None:
    url = data.get("database_url")
    if isinstance(url, str) and re.search(r"//[^/@\s]*:[^@\s]+@", url):
        raise ConfigError(
            "database_url: a password does not belong in the file; set the whole URL in "
            "NEWSLETTER_DATABASE_URL instead",
            shown,
            _line_of(text, "", "database_url"),
        )
    for table, key in _keys(data):
        if key.lower() in SECRET_KEYS:
            dotted = f"{table}.{key}" if table else key
            raise ConfigError(
                f"{dotted}: secrets are read from the environment only, never from the file "
                "(NEWSLETTER_SECRET_KEY, SENDGRID_API_KEY, NEWSLETTER_SMTP__PASSWORD, "
                "NEWSLETTER_WEBHOOKS__INBOUND_SECRET)",
                shown,
                _line_of(text, table, key),
            )


def _refuse_unknown_keys(data: dict[str, Any], text: str, shown: str) -> None:
    """A misspelt key would otherwise surface as "required setting is missing" for the
    key it was meant to be, or be ignored: name it, its line, and the closest known key."""
    fields = Settings.model_fields
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(_unknown(key, list(fields)), shown, _line_of(text, "", key))
        annotation = fields[key].annotation
        if not (isinstance(value, dict) and isinstance(annotation, type)):
            continue
        if issubclass(annotation, BaseModel):
            known = list(annotation.model_fields)
            for sub in value:
                if sub not in known:
                    raise ConfigError(
                        f"[{key}] " + _unknown(sub, known), shown, _line_of(text, key, sub)
                    )


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
    return f"unknown setting '{key}'{hint}"


def _keys(data: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend((key, sub) for sub in value)
        else:
            out.append(("", key))
    return out


def _explain(exc: ValidationError, text: str, shown: str) -> ConfigError:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    dotted = ".".join(loc) or "settings"
    env_name = ENV_PREFIX + "__".join(loc).upper()
    if error["type"] == "missing":
        place = (
            f"a line `{loc[-1]} = ...` under [{loc[0]}]"
            if len(loc) > 1
            else f"a line `{dotted} = ...` at the top of {CONFIG_FILE}, before the first [table]"
        )
        return ConfigError(
            f"{dotted}: required setting is missing; add {place}, or set {env_name}", shown
        )
    message = (
        "unknown setting" if error["type"] == "extra_forbidden" else plain_message(dict(error))
    )
    for prefix in range(len(loc), 0, -1):  # NEWSLETTER_SMTP__PORT, then NEWSLETTER_SMTP
        candidate = ENV_PREFIX + "__".join(loc[:prefix]).upper()
        if any(name.upper() == candidate for name in os.environ):
            return ConfigError(f"{dotted}: {message}", f"environment variable {candidate}")
    table, key = (loc[0], loc[1]) if len(loc) > 1 else ("", loc[0] if loc else "")
    return ConfigError(f"{dotted}: {message}", shown, _line_of(text, table, key))


def _line_of(text: str, table: str, key: str) -> int | None:
    """Line of `key` in `[table]` (or at top level); TOML parsers keep no positions."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]\s]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if not table and current == key:  # the key is a whole table
                return number
            continue
        if current == table and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return number
    return None
