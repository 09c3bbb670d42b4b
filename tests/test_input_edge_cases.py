"""Inputs that once crashed or slipped through; each must now be a clear answer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from newsletter.errors import ExitStatus
from newsletter.infra.workspace import open_workspace

WELCOME = "2026-12-welcome"
SNIPPET = "how-microneedling-works"


def one_line(result, fragment: str, location: str | None = None) -> None:
    assert result.code == ExitStatus.INPUT_ERROR, (result.code, result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert fragment in result.err
    if location:
        assert location in result.err


@pytest.mark.parametrize("value", ["2026-13-20", "2026-02-30", "yesterday"])
def test_impossible_dates_name_the_line(sample, cli, value):
    sample.snippet(SNIPPET, reviewed=value)
    one_line(cli("check", WELCOME), "reviewed:", f"issues/snippets/{SNIPPET}.md:5")


def test_yaml_aliases_are_refused(sample, cli):
    sample.snippet(SNIPPET, tags="&a [*a]")
    one_line(cli("check", WELCOME), "anchors and aliases", f"issues/snippets/{SNIPPET}.md:")


def test_subject_with_a_line_break_is_refused(sample, cli):
    sample.issue("t", [SNIPPET], subject='"Hello\\r\\nBcc: x@example.com"')
    one_line(cli("check", "t"), "subject: must be one line", "issues/t.md:2")


def test_image_without_alt_points_at_the_image_line(sample, cli):
    sample.snippet(SNIPPET, image="https://example.org/a.png")
    one_line(cli("check", WELCOME), "alt text", f"issues/snippets/{SNIPPET}.md:9")


def test_missing_nested_field_points_at_its_item(sample, cli):
    sample.snippet(SNIPPET, sources="\n  - title: Only a title")
    one_line(cli("check", WELCOME), "sources.0.url", f"issues/snippets/{SNIPPET}.md:7")


def test_markers_in_subject_and_preheader_are_caught(sample, cli):
    sample.snippet("a")
    sample.issue("t", ["a"], preheader="TK write a teaser")
    result = cli("check", "t", "--json")
    findings = {f["code"]: f for f in json.loads(result.out)["findings"]}
    assert result.code == ExitStatus.CHECKS_FAILED
    assert (findings["marker-left"]["file"], findings["marker-left"]["line"]) == ("issues/t.md", 3)


def test_marker_only_in_the_html_template_is_caught(sample, cli):
    sample.edit(
        "templates/email/footer.mjml.j2",
        "<p>{{ copy.disclaimer(footer_text=false) }}</p>",
        "<p>{{ copy.disclaimer(footer_text=false) }} TODO legal</p>",
    )
    result = cli("check", WELCOME, "--json")
    findings = {f["code"]: f for f in json.loads(result.out)["findings"]}
    assert findings["marker-left"]["file"].endswith("footer.mjml.j2")


@pytest.mark.parametrize(
    "address",
    [
        "O'Brien House, 12 Example Street, Springfield",
        "Follicle Notes Ltd, Unit 4, The Long Business Park, 1234 Quite Long Road Name, "
        "Springfield, ST 00000, United States of America",
    ],
)
def test_postal_addresses_with_quotes_or_wrapped_lines_are_found(sample, cli, monkeypatch, address):
    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", address)
    result = cli("check", WELCOME, "--json")
    codes = {f["code"] for f in json.loads(result.out)["findings"]}
    assert "postal-address-missing" not in codes


def test_rich_markup_in_titles_is_shown_as_written(sample, cli):
    sample.snippet(SNIPPET, title='"[/b] [b]x[/b]"')
    result = cli("snippets", "list")
    assert result.code == 0
    assert "[/b] [b]x[/b]" in result.out


def test_misspelt_placeholder_names_the_template_line(sample, cli):
    line = sample.edit(
        "templates/email/footer.mjml.j2", "ph('preferences_url')", "ph('preference_url')"
    )
    one_line(cli("check", WELCOME), "unknown placeholder", f"footer.mjml.j2:{line}")


def test_upper_case_mjml_tags_are_refused(sample, cli):
    line = sample.edit("templates/email/snippet.mjml.j2", "<mj-divider ", "<MJ-DIVIDER ")
    one_line(cli("check", WELCOME), "lower case", f"snippet.mjml.j2:{line}")


def test_mjml_in_html_comments_is_ignored(sample, cli):
    sample.edit(
        "templates/email/footer.mjml.j2",
        "      <mj-column>",
        "      <!-- <mj-foo> was here -->\n      <mj-column>",
    )
    assert cli("check", WELCOME).code == 0


def test_unwritable_output_folder_is_an_input_error(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line(cli("build", WELCOME, "--out", str(blocker / "sub")), "cannot write output")


def test_output_files_are_readable_by_others(cli, tmp_path):
    out = tmp_path / "out"
    cli("build", WELCOME, "--out", str(out))
    mode = (out / "index.html").stat().st_mode
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(mode) == 0o666 & ~umask


def test_bom_in_a_template_does_not_reach_the_output(sample, cli, tmp_path):
    template = sample.root / "templates/email/issue.txt.j2"
    template.write_bytes(b"\xef\xbb\xbf" + template.read_bytes())
    cli("build", WELCOME, "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o" / "index.txt").read_bytes().startswith(b"\xef\xbb\xbf")


def test_editor_lock_files_are_ignored(sample, cli):
    sample.write("issues/.#2026-12-welcome.md", b"\xff\xfe not a real file")
    assert cli("issues", "list").code == 0


def test_empty_issue_argument(cli):
    one_line(cli("check", ""), "no issue given")


def test_json_flag_gets_a_json_error(cli):
    result = cli("check", "no-such-issue", "--json")
    assert result.code == 2
    assert json.loads(result.out)["error"]["message"].startswith("no issue 'no-such-issue'")


def test_misspelt_environment_variable_is_named(sample, monkeypatch):
    from newsletter.errors import ConfigError

    monkeypatch.setenv("NEWSLETTER_BASEURL", "https://x.example")
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert str(caught.value) == (
        "environment variable NEWSLETTER_BASEURL: unknown setting; "
        "did you mean NEWSLETTER_BASE_URL?"
    )


def test_table_as_json_environment_variable(sample, monkeypatch):
    from newsletter.errors import ConfigError

    monkeypatch.setenv("NEWSLETTER_SMTP", "not json")
    with pytest.raises(ConfigError, match="cannot read settings from the environment"):
        open_workspace(sample.root)
    monkeypatch.setenv("NEWSLETTER_SMTP", '{"port": 0}')
    with pytest.raises(ConfigError) as caught:
        open_workspace(sample.root)
    assert caught.value.file == "environment variable NEWSLETTER_SMTP"


def test_inconsistent_check_limits_and_blank_address(sample, monkeypatch):
    from newsletter.errors import ConfigError

    monkeypatch.setenv("NEWSLETTER_CHECKS__HTML_WARN_KB", "200")
    with pytest.raises(ConfigError, match="html_warn_kb"):
        open_workspace(sample.root)
    monkeypatch.delenv("NEWSLETTER_CHECKS__HTML_WARN_KB")
    monkeypatch.setenv("NEWSLETTER_POSTAL_ADDRESS", "   ")
    with pytest.raises(ConfigError, match="postal_address"):
        open_workspace(sample.root)


def test_reserved_characters_in_settings(sample, cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_NAME", "News ⟦unsubscribe_url⟧")
    one_line(cli("check", WELCOME), "reserved character")


def test_future_review_date_and_empty_body_warn(sample, cli):
    sample.snippet("a", reviewed="2999-01-01", body="")
    sample.issue("t", ["a"])
    codes = {f["code"] for f in json.loads(cli("check", "t", "--json").out)["findings"]}
    assert {"snippet-review-future", "snippet-empty"} <= codes


def test_autolink_is_not_printed_twice_in_text(sample, cli, tmp_path):
    sample.snippet("a", body="See <https://example.org/page> for more.")
    sample.issue("t", ["a"])
    cli("build", "t", "--out", str(tmp_path / "o"))
    text = (tmp_path / "o" / "index.txt").read_text(encoding="utf-8")
    assert text.count("https://example.org/page") == 1


def test_preview_reports_findings_on_stderr(sample, cli):
    sample.snippet("a", sources=None)
    sample.issue("t", ["a"])
    result = cli("preview", "t")
    assert result.code == 0
    assert "snippet-no-sources" in result.err
    assert result.out.strip().endswith("t.html")


def test_closed_pipe_exits_141(sample):
    command = (
        f"{sys.executable} -m newsletter --workspace {sample.root} snippets list "
        "| head -c 1 > /dev/null; exit ${PIPESTATUS[0]}"
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert done.returncode in (0, 141), done.stderr  # 0 when it all fit in the pipe
    assert "Traceback" not in done.stderr
