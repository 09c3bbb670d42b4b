"""Configuration: newsletter.toml, environment overrides, secrets, one-line errors."""

from __future__ import annotations

import pytest

from newsletter.errors import ConfigError
from newsletter.infra.settings import Secrets
from newsletter.infra.workspace import open_workspace


def config(sample, extra: str = "", replace: tuple[str, str] | None = None) -> None:
    path = sample.root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path.write_text(text + extra, encoding="utf-8")


def line_of(sample, needle: str) -> int:
    text = (sample.root / "newsletter.toml").read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


def test_file_values_and_defaults(sample):
    settings = open_workspace(sample.root).settings
    assert settings.name == "Follicle Notes"
    assert settings.transport == "outbox"
    assert settings.smtp.port == 587
    assert settings.checks.html_max_kb == 102


def test_environment_overrides_top_level_and_table_keys(sample, monkeypatch, tmp_path):
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://other.example.org/")
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "smtp")
    monkeypatch.setenv("NEWSLETTER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "mail.example.org")
    monkeypatch.setenv("NEWSLETTER_SENDGRID__HOST", "http://127.0.0.1:9999")
    workspace = open_workspace(sample.root)
    settings = workspace.settings
    assert settings.base_url == "https://other.example.org"
    assert settings.transport == "smtp"
    assert settings.smtp.host == "mail.example.org"
    assert settings.smtp.security == "starttls"  # the rest of the table still from the file
    assert settings.sendgrid.host == "http://127.0.0.1:9999"
    assert workspace.state_dir == tmp_path / "state"
    assert workspace.database_url == "sqlite:////tmp/x.db"


def test_default_database_is_sqlite_in_state_dir(sample):
    workspace = open_workspace(sample.root)
    assert workspace.database_url == f"sqlite:///{sample.root / '.state' / 'newsletter.db'}"


def test_invalid_value_in_file_names_key_and_line(sample):
    config(sample, replace=("port = 587", 'port = "lots"'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    error = caught.value
    assert error.file.endswith("newsletter.toml")
    assert error.line == line_of(sample, 'port = "lots"')
    assert error.message.startswith("smtp.port:")


def test_invalid_value_from_environment_names_the_variable(sample, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "maybe")
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert str(caught.value).startswith(
        "environment variable NEWSLETTER_SMTP__SECURITY: smtp.security:"
    )


def test_unknown_key_names_its_line(sample):
    config(sample, extra="\n[smtp2]\nhost = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message == "unknown setting 'smtp2'; did you mean 'smtp'?"
    assert caught.value.line == line_of(sample, "[smtp2]")


def test_missing_required_key_says_how_to_set_it(sample):
    config(sample, replace=('postal_address = "', '# postal_address = "'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert "postal_address: required setting is missing" in str(caught.value)
    assert "NEWSLETTER_POSTAL_ADDRESS" in str(caught.value)


def test_invalid_from_address(sample):
    config(sample, replace=('from_address = "news@', 'from_address = "news-at-'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message.startswith("from_address:")
    assert caught.value.line == line_of(sample, "from_address")


def test_broken_toml_names_line(sample):
    config(sample, extra="\nname = = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message.startswith("invalid TOML")
    assert caught.value.line == line_of(sample, "name = = ")


@pytest.mark.parametrize(
    "key",
    ["secret_key = 'abc'", "[smtp]\npassword = 'abc'", "[webhooks]\ninbound_secret = 'abc'"],
)
def test_secrets_in_the_file_are_refused(sample, key):
    path = sample.root / "newsletter.toml"
    text = path.read_text(encoding="utf-8").replace("[smtp]\n", "")
    path.write_text(
        key.replace("[smtp]\n", "") + "\n" + text if "[" not in key else text + "\n" + key + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert "secrets are read from the environment only" in str(caught.value)
    assert "abc" not in str(caught.value)


def test_secrets_come_from_the_environment_and_are_never_shown(sample, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SMTP__PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "key-one, key-two")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.secret-value")
    settings = open_workspace(sample.root).settings
    secrets = Secrets.from_environ()
    assert settings.smtp.password.get_secret_value() == "hunter2-smtp"
    assert [k.get_secret_value() for k in secrets.secret_keys] == ["key-one", "key-two"]
    assert secrets.sendgrid_api_key.get_secret_value() == "SG.secret-value"
    shown = repr(settings) + str(settings.model_dump()) + repr(secrets)
    for secret in ("hunter2-smtp", "key-one", "SG.secret-value"):
        assert secret not in shown


def test_config_error_through_the_cli_is_one_line_exit_2(sample, cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "not a url")
    result = cli("issues", "list")
    assert result.code == 2
    assert result.err.strip() == (
        "error: environment variable NEWSLETTER_BASE_URL: base_url: must be an absolute "
        "http(s) URL such as https://news.example.com (got 'not a url')"
    )


def test_a_misspelt_key_is_named_with_its_line_and_the_closest_known_key(sample):
    config(sample, replace=('from_name = "Follicle Notes"', 'fromname = "Follicle Notes"'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message == "unknown setting 'fromname'; did you mean 'from_name'?"
    assert caught.value.line == line_of(sample, "fromname")
    config(sample, replace=("fromname =", "#fromname ="))
    config(sample, extra="\n[checks2]\n", replace=("[smtp]\nhost", "[smtp]\nhots"))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message == "[smtp] unknown setting 'hots'; did you mean 'host'?"
    assert caught.value.line == line_of(sample, "hots")


def test_a_missing_required_key_says_where_to_put_it(sample):
    config(sample, replace=('from_name = "Follicle Notes"', ""))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    message = caught.value.message
    assert message.startswith("from_name: required setting is missing; add a line `from_name")
    assert "before the first [table]" in message and "NEWSLETTER_FROM_NAME" in message


def test_plain_http_base_url_is_a_setting_error_except_on_this_machine(sample):
    good = 'base_url = "https://news.follicle-notes.example.com"'
    config(sample, replace=(good, 'base_url = "http://news.follicle-notes.example.com"'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message.startswith("base_url: must be https://")
    assert caught.value.line == line_of(sample, "base_url")
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        text = (sample.root / "newsletter.toml").read_text(encoding="utf-8")
        current = next(line for line in text.splitlines() if line.startswith("base_url"))
        config(sample, replace=(current, f'base_url = "{local}"'))
        assert open_workspace(sample.root).settings.base_url == local


def test_a_short_secret_key_is_explained_once(sample, monkeypatch):
    from newsletter.infra.settings import load_signing_keys

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "short")
    with pytest.raises(ConfigError) as caught:
        load_signing_keys(sample.root, allow_generated=False)
    assert str(caught.value) == (
        "environment variable NEWSLETTER_SECRET_KEY: each key must be at least 16 characters"
    )


def test_type_errors_in_settings_are_in_plain_words(sample):
    config(sample, replace=("port = 587", 'port = "five"'))
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.message == "smtp.port: must be a whole number (got 'five')"


def test_a_short_inbound_secret_is_a_setting_error_that_does_not_show_it(sample, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__INBOUND_SECRET", "tooshort")
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert "NEWSLETTER_WEBHOOKS__INBOUND_SECRET" in str(caught.value)
    assert "at least 16" in str(caught.value) and "tooshort" not in str(caught.value)
