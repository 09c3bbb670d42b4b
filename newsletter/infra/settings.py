"""Settings: `newsletter.toml` overridden by `NEWSLETTER_*` environment variables.

Secrets never live in the file: they are read from the environment only (`Secrets`).
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
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
from newsletter.infra.setting_tables import (
    BaseUrlStr,
    CheckSettings,
    FeedbackSettings,
    OutboxSettings,
    ScheduleSettings,
    SendgridSettings,
    SendingSettings,
    SmtpSettings,
    TestSettings,
    Text,
    ThemeSettings,
    TopicSettings,
    TrackingSettings,
    UtmSettings,
    WebhookSettings,
    WebSettings,
)

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
    details = dict(error)
    if loc and loc[-1].lower() in SECRET_KEYS:
        details.pop("input", None)  # a secret's value is never shown, wrong or not
    message = "unknown setting" if error["type"] == "extra_forbidden" else plain_message(details)
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
