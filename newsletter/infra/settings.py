"""Settings: `newsletter.toml` overridden by `NEWSLETTER_*` environment variables.

Secrets never live in the file: they are read from the environment only (`Secrets`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from newsletter.errors import ConfigError
from newsletter.infra.files import display_path, read_text

CONFIG_FILE = "newsletter.toml"
ENV_PREFIX = "NEWSLETTER_"
SECRET_KEYS = {"secret_key", "api_key", "password", "sendgrid_api_key", "smtp_password"}


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError("must be an absolute http(s) URL such as https://news.example.com")
    return value.rstrip("/")


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]


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
    rate: PositiveFloat | None = None  # messages per second; None = as fast as the server takes
    concurrency: PositiveInt = 4


class SendgridSettings(_Table):
    host: HttpUrlStr = "https://api.sendgrid.com"
    asm_group_id: PositiveInt | None = None
    sandbox: bool = False
    categories: list[str] = Field(default_factory=list, max_length=10)
    rate: PositiveFloat | None = None
    concurrency: PositiveInt = 2


class OutboxSettings(_Table):
    rate: PositiveFloat | None = None
    concurrency: PositiveInt = 1


class UtmSettings(_Table):
    """UTM tagging of links; off unless `source` is set."""

    source: str | None = None
    medium: str = "email"


class CheckSettings(_Table):
    review_max_age_days: PositiveInt = 365
    html_warn_kb: PositiveInt = 80
    html_max_kb: PositiveInt = 102
    subject_max_chars: PositiveInt = 78


class Settings(BaseSettings):
    """Everything configurable; field names are the keys of `newsletter.toml`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    name: str = Field(min_length=1)
    from_address: EmailStr
    from_name: str = Field(min_length=1)
    reply_to: EmailStr | None = None
    postal_address: str = Field(min_length=1)
    base_url: HttpUrlStr
    state_dir: Path = Path(".state")
    database_url: str | None = None
    transport: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    sendgrid: SendgridSettings = Field(default_factory=SendgridSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    utm: UtmSettings = Field(default_factory=UtmSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)

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
        keys = [k.strip() for k in env.get("NEWSLETTER_SECRET_KEY", "").split(",") if k.strip()]
        return cls(
            secret_keys=[SecretStr(k) for k in keys],
            sendgrid_api_key=SecretStr(env["SENDGRID_API_KEY"])
            if env.get("SENDGRID_API_KEY")
            else None,
        )


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
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _explain(exc, text, shown) from None


def _refuse_secrets(data: dict[str, Any], text: str, shown: str) -> None:
    for table, key in _keys(data):
        if key.lower() in SECRET_KEYS:
            dotted = f"{table}.{key}" if table else key
            raise ConfigError(
                f"{dotted}: secrets are read from the environment only, never from the file "
                "(NEWSLETTER_SECRET_KEY, SENDGRID_API_KEY, NEWSLETTER_SMTP__PASSWORD)",
                shown,
                _line_of(text, table, key),
            )


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
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return ConfigError(
            f"{dotted}: required setting is missing (set it in {CONFIG_FILE} or {env_name})", shown
        )
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    elif "input" in error and not isinstance(error["input"], dict):
        message = f"{message} (got {error['input']!r})"
    if any(name.upper() == env_name for name in os.environ):
        return ConfigError(f"{dotted}: {message}", f"environment variable {env_name}")
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
